"""The shared page's bundle: the folder of precomputed results a static page opens.

``write_bundle`` (:mod:`.build`) writes it, the page (:mod:`.app`) reads it. A bundle holds
``points.csv.gz`` (the results frame's columns, with each label's source and confidence when
the results have them; plain CSV because pandas reads it without
pyarrow), ``meta.json`` (what was shared: counts, sample seed, source name, the clusters'
suggested names) and ``thumbnails.zip`` (small JPEGs named ``<content hash>.jpg``). No Panel
import.

>>> read_bundle("bulk_panel_data").frame.label.value_counts()
>>> BundledThumbnails("bulk_panel_data/thumbnails.zip").get(digest)
"""
from __future__ import annotations

import json
import threading
import zipfile
from pathlib import Path
from typing import Optional

import pandas as pd

from ..compute.results import Results, build_frame
from ..compute.thumbs import HASH_PATTERN, THUMB_SIZE, ThumbnailCache

__all__ = ["BUNDLE_DIR", "BundledThumbnails", "META_FILE", "POINTS_FILE", "THUMBS_FILE", "describe", "read_bundle"]

BUNDLE_DIR = "bulk_panel_data"
POINTS_FILE = "points.csv.gz"
META_FILE = "meta.json"
THUMBS_FILE = "thumbnails.zip"
BUNDLE_FORMAT = "bulk_panel.share"
BUNDLE_VERSION = 1
TEXT_COLUMNS = ["path", "content_hash", "label"]
NUMBER_COLUMNS = ["width", "height", "x", "y", "cluster", "probability", "outlier_score"]
#: each label's source and confidence, in bundles of results that have them
SOURCE_COLUMNS = ["label_source", "confidence"]


def read_bundle(folder: str | Path = BUNDLE_DIR) -> Results:
    """The shared results in ``folder`` (rows and meta; no vectors, no file to save into).

    Text columns stay text whatever they hold (a label ``NA`` or ``123`` is not a number).

    >>> read_bundle("bulk_panel_data").frame.label.value_counts()
    """
    folder = Path(folder)
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != BUNDLE_VERSION:
        raise ValueError(f"{folder / META_FILE}: not a bulk_panel share bundle of version {BUNDLE_VERSION}")
    rows = pd.read_csv(
        folder / POINTS_FILE, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
        na_values={c: [""] for c in [*NUMBER_COLUMNS, "confidence"]},
    )
    frame = build_frame(
        paths=rows["path"], hashes=rows["content_hash"], sizes=rows[["width", "height"]].to_numpy(),
        xy=rows[["x", "y"]].to_numpy(), clusters=rows["cluster"], probabilities=rows["probability"],
        outlier_scores=rows["outlier_score"], labels=rows["label"],
    )
    if set(SOURCE_COLUMNS) <= set(rows.columns):
        frame = frame.assign(label_source=rows["label_source"].to_numpy(), confidence=rows["confidence"].to_numpy())
    return Results(frame=frame, meta=meta)


def describe(meta: dict) -> str:
    """One sentence (plain text) saying what a bundle holds, from its meta."""
    shown, total = int(meta.get("rows_shown", 0)), int(meta.get("rows_total", 0))
    source = meta.get("source") or "results"
    if shown < total:
        return (f"A random sample of {shown:,} of the {total:,} images in {source} "
                f"(seed {meta.get('sample_seed', 0)}); labels and the CSV cover the sample.")
    return f"All {total:,} images in {source}."


class BundledThumbnails(ThumbnailCache):
    """The page's thumbnails: the ``<content hash>.jpg`` entries of one zip file, one size.

    Nothing is registered, made or written: :meth:`get` reads an entry (whatever ``size`` is
    asked, there is one) or gives ``None``.

    >>> BundledThumbnails("bulk_panel_data/thumbnails.zip").get(frame.content_hash[0])
    """

    def __init__(self, archive: Optional[str | Path] = None):
        super().__init__()
        self._zip = None
        self._digests: frozenset[str] = frozenset()
        if archive is not None and Path(archive).is_file():
            self._zip = zipfile.ZipFile(archive)
            stems = (name[:-4] for name in self._zip.namelist() if name.endswith(".jpg"))
            self._digests = frozenset(stem for stem in stems if HASH_PATTERN.fullmatch(stem))
        self._read_lock = threading.Lock()

    def register(self, image_root, frame) -> int:
        return 0  # a page has no image folder: the zip holds all it can show

    def __contains__(self, digest) -> bool:
        return isinstance(digest, str) and digest in self._digests

    def source(self, digest: str) -> None:
        return None

    def get(self, digest: str, size: int = THUMB_SIZE) -> Optional[bytes]:
        if digest not in self:
            return None
        with self._read_lock:
            return self._zip.read(f"{digest}.jpg")
