"""The shared page: the dashboard's own state and views on a bundle of precomputed results.

It runs in the browser (Pyodide, the page ``bulk-panel share`` builds with ``panel convert``)
or under ``panel serve``: no pipeline, no server routes, no image files, no datashader; torch,
timm, umap, hdbscan and numba are never imported. What it keeps: the map as plain WebGL
points, the hover thumbnail, box and lasso selection into the table, the label chooser and
label edits (with undo), and the CSV download of the labels, made in the browser.

>>> StaticDashboard.from_bundle("bulk_panel_data").servable()   # the page's app script
>>> servable_page("bulk_panel_data")                            # the same, with pn.extension

A bundle is a folder (``bulk_panel.share.write_bundle`` writes it): ``points.csv.gz`` (the
results frame's columns; plain CSV because pandas reads it without pyarrow), ``meta.json``
(what was shared: counts, sample seed, source name) and ``thumbnails.zip`` (small JPEGs named
``<content hash>.jpg``).
"""
from __future__ import annotations

import json
import sys
import threading
import zipfile
from pathlib import Path
from typing import Optional

import pandas as pd
import panel as pn
import param

from .compute.results import Results, build_frame
from .compute.thumbs import HASH_PATTERN, THUMB_SIZE, ThumbnailCache
from .views import text_pane
from .state import ResultsStore
from .views import Dashboard

__all__ = ["BUNDLE_DIR", "BundledThumbnails", "StaticDashboard", "describe", "read_bundle", "servable_page"]

BUNDLE_DIR = "bulk_panel_data"
POINTS_FILE = "points.csv.gz"
META_FILE = "meta.json"
THUMBS_FILE = "thumbnails.zip"
BUNDLE_FORMAT = "bulk_panel.share"
BUNDLE_VERSION = 1
TEXT_COLUMNS = ["path", "content_hash", "label"]
NUMBER_COLUMNS = ["width", "height", "x", "y", "cluster", "probability", "outlier_score"]


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
        na_values={c: [""] for c in NUMBER_COLUMNS},
    )
    frame = build_frame(
        paths=rows["path"], hashes=rows["content_hash"], sizes=rows[["width", "height"]].to_numpy(),
        xy=rows[["x", "y"]].to_numpy(), clusters=rows["cluster"], probabilities=rows["probability"],
        outlier_scores=rows["outlier_score"], labels=rows["label"],
    )
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


class StaticDashboard(Dashboard):
    """The dashboard as a shared page: map (plain WebGL points), hover thumbnail, box and lasso
    selection → table, label summary, label chooser and edits, CSV download, the cluster
    gallery, colouring by outlier score and "Show outliers".

    Hidden, because a page has nothing behind them: the pipeline controls, "Save labels" (no
    results file), the Parquet download (no pyarrow in the browser) and the images zip (no
    image files). Thumbnails are inlined as ``data:`` URIs from the bundle.

    >>> StaticDashboard.from_bundle("bulk_panel_data").servable()
    """

    thumbnails_url = param.String(
        default=None, allow_None=True, doc="None: thumbnails are inlined (a static page has no route)."
    )
    rasterize_above = param.Integer(
        default=sys.maxsize, doc="Never datashade: the browser has no datashader; the bundle is capped instead."
    )
    title = param.String(default="bulk_panel · shared labels", doc="Page title.")
    tool_tabs = param.ListSelector(
        default=["gallery"], objects=["similar", "gallery", "duplicates"],
        doc="Only the cluster gallery: the page has no embeddings (more like this), no scipy (duplicates) "
            "and no hdbscan (splitting).",
    )
    note = param.String(default="", doc="What the page holds (sample, source), shown as text in the sidebar.")

    def __init__(self, **params):
        if "thumbnails" not in params:
            params["thumbnails"] = BundledThumbnails()
        super().__init__(**params)
        self.tools.save_button.visible = False
        self.downloads.parquet.visible = False
        self.downloads.zip.visible = False

    @classmethod
    def from_bundle(cls, folder: str | Path = BUNDLE_DIR, **params) -> "StaticDashboard":
        """The page on the bundle in ``folder`` (relative paths: to the working directory,
        which is where Pyodide unpacks the page's resources)."""
        folder = Path(folder)
        results = read_bundle(folder)
        params.setdefault("note", describe(results.meta) + " Label edits stay in this page: download the CSV to keep them.")
        return cls(store=ResultsStore(results=results), thumbnails=BundledThumbnails(folder / THUMBS_FILE), **params)

    async def _warm(self) -> None:
        # Pyodide has no threads; the bundle is small enough to build the lookups in place
        self.store.warm()

    def sidebar(self) -> list:
        note = text_pane(self.note, styles={"font-size": "12px"}, sizing_mode="stretch_width",
                         stylesheets=["pre { white-space: pre-wrap; overflow-wrap: anywhere; }"])
        return [note, *super().sidebar()]


def servable_page(folder: str | Path = BUNDLE_DIR) -> pn.template.BaseTemplate:
    """The page's whole app script: Panel's extensions, then the served template.

    >>> servable_page()          # in index.py, next to bulk_panel_data/
    """
    pn.extension("tabulator", sizing_mode="stretch_width")
    dashboard = StaticDashboard.from_bundle(folder)
    return dashboard.servable()

