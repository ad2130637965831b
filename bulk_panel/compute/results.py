"""The results file: one Parquet file per run, read back with :func:`load_results`.

>>> results = load_results("results.parquet")
>>> results.frame.head()        # path, x, y, cluster, label, probability, outlier_score, ...
>>> results.embeddings.shape    # float32, aligned with the rows (read on first access)
>>> results.skipped             # files that could not be used, with the reason
>>> results.meta["model"]

Layout: the frame's columns, plus ``embedding`` and ``cluster_coords`` as fixed-size float32
lists; the Parquet schema metadata key ``bulk_panel`` holds JSON with ``format``,
``version``, ``meta`` and ``skipped``. Writing is atomic (temporary file, then rename).
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .cache import atomic_write
from .schema import RECORD_COLUMNS

FORMAT = "bulk_panel.results"
VERSION = 1
META_KEY = b"bulk_panel"
VECTOR_COLUMNS = ("embedding", "cluster_coords")
# rows per Parquet row group: readers hold one row group's column at a time (16k × 1280 floats
# = 80 MB), so vectors of any size load at about their own size in memory
ROW_GROUP_ROWS = 16_384
# a results folder: Parquet parts of at most this many rows, read through Dask DataFrames
PART_ROWS = 250_000
PART_NAME = "part-{:05d}.parquet"
SEED_CSV_COLUMNS = ["text", "x", "y", "filename", "color"]


class ResultsError(ValueError):
    """A results file that cannot be read; the message names the file and the reason."""


def _vectors_to_arrow(x: np.ndarray):
    import pyarrow as pa

    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def _vectors_from_arrow(column) -> np.ndarray:
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = arr.type.list_size
    return arr.values.to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32, copy=False)


@dataclass
class Results:
    """What one run produced: rows (one per used image), vectors, skipped files and metadata."""

    frame: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"path": [], "reason": []}))
    meta: dict = field(default_factory=dict)
    path: Optional[Path] = None
    _embeddings: Optional[np.ndarray] = None
    _cluster_coords: Optional[np.ndarray] = None

    @property
    def embeddings(self) -> np.ndarray:
        """float32 embeddings aligned with ``frame`` (read from the file on first access)."""
        if self._embeddings is None and self.path is not None:
            self._embeddings = _read_vectors(self.path, "embedding")
        return self._embeddings

    @property
    def cluster_coords(self) -> Optional[np.ndarray]:
        """The clustering-space coordinates (n × cluster_dims) the clusters were found in."""
        if self._cluster_coords is None and self.path is not None:
            self._cluster_coords = _read_vectors(self.path, "cluster_coords")
        return self._cluster_coords

    @functools.cached_property
    def docs(self):
        """The rows as a ``DocList[ImageRecord]`` with embeddings (built on first access)."""
        from .records import docs_from_frame  # DocArray imports torch: only when asked

        return docs_from_frame(self.frame, self.embeddings)

    @property
    def image_root(self) -> Optional[Path]:
        root = self.meta.get("image_root")
        return Path(root) if root else None

    def save(self, path: str | Path, rows_per_part: Optional[int] = None) -> Path:
        """Write the results atomically to ``path`` (one Parquet file) and return the path.

        With ``rows_per_part``, or when ``path`` is already a results folder, write a folder of
        Parquet parts instead (each part a complete results file for its rows), which
        :func:`load_results` reads through Dask DataFrames.
        """
        import pyarrow.parquet as pq

        path = Path(path)
        if rows_per_part or path.is_dir():
            return self._save_parts(path, rows_per_part or PART_ROWS)
        table = self._table(0, len(self.frame))
        atomic_write(path, lambda fh: pq.write_table(table, fh, row_group_size=ROW_GROUP_ROWS))
        self.path = path
        return path

    def _table(self, start: int, stop: int):
        """The Arrow table of rows ``start:stop`` with their vectors and the results' metadata."""
        import pyarrow as pa

        table = pa.Table.from_pandas(self.frame.iloc[start:stop].reset_index(drop=True), preserve_index=False)
        for name, values in (("embedding", self.embeddings), ("cluster_coords", self.cluster_coords)):
            if values is not None and len(values) == len(self.frame) and values.ndim == 2 and values.shape[1]:
                table = table.append_column(name, _vectors_to_arrow(values[start:stop]))
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "meta": self.meta,
            "skipped": self.skipped[["path", "reason"]].to_dict("list"),
        }
        metadata = dict(table.schema.metadata or {})
        metadata[META_KEY] = json.dumps(payload, default=str).encode()
        return table.replace_schema_metadata(metadata)

    def _save_parts(self, folder: Path, rows_per_part: int) -> Path:
        """Write ``part-00000.parquet``… into a new folder, then swap it in for ``folder``: a
        crash leaves the old folder (or the new one) whole, plus a hidden leftover to delete."""
        import pyarrow.parquet as pq

        self.embeddings, self.cluster_coords  # read the old parts' vectors before replacing them
        token = uuid.uuid4().hex[:8]
        staging = folder.with_name(f".{folder.name}.{token}.tmp")
        staging.mkdir(parents=True)
        try:
            n = len(self.frame)
            for number, start in enumerate(range(0, max(n, 1), rows_per_part)):
                table = self._table(start, min(n, start + rows_per_part))
                pq.write_table(table, staging / PART_NAME.format(number), row_group_size=ROW_GROUP_ROWS)
            old = folder.with_name(f".{folder.name}.{token}.old")
            if folder.exists():
                os.replace(folder, old)
            os.replace(staging, folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.path = folder
        return folder

    def to_csv(self, path: str | Path | None = None, *, seed_columns: bool = False) -> Optional[str]:
        """CSV of the rows; ``seed_columns=True`` writes the seed app's ``text,x,y,filename,color``.

        Returns the text when ``path`` is None.
        """
        if seed_columns:
            root = self.image_root
            out = pd.DataFrame(
                {
                    "text": self.frame["path"].map(lambda p: p.rsplit("/", 1)[-1]),
                    "x": self.frame["x"],
                    "y": self.frame["y"],
                    "filename": self.frame["path"].map(lambda p: str(root / p) if root else p),
                    "color": self.frame["cluster"],
                }
            )
        else:
            out = self.frame
        if path is None:
            return out.to_csv(index=False)
        text = out.to_csv(index=False)
        atomic_write(Path(path), lambda fh: fh.write(text.encode()))
        return None


def _read_payload(path: Path):
    import pyarrow.parquet as pq

    if not path.exists():
        raise ResultsError(f"{path}: no such results file")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise ResultsError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from exc
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise ResultsError(f"{path}: a Parquet file, but not bulk_panel results (no bulk_panel metadata)")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise ResultsError(f"{path}: damaged bulk_panel metadata") from exc
    if payload.get("format") != FORMAT:
        raise ResultsError(f"{path}: unknown results format {payload.get('format')!r}")
    if payload.get("version") != VERSION:
        raise ResultsError(
            f"{path}: results format version {payload.get('version')!r}; this bulk_panel reads version {VERSION}"
        )
    return schema, payload


def _parts(folder: Path) -> list[Path]:
    """The Parquet parts of a results folder in row order ('part-00002', or Dask's 'part.10')."""
    def natural(part: Path) -> list:
        return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", part.name)]

    return sorted(folder.glob("part*.parquet"), key=natural)


def is_results_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder of bulk_panel results parts (rather than a folder of images).

    >>> is_results_folder("results/")   # part-00000.parquet … with bulk_panel metadata
    True
    """
    import pyarrow.parquet as pq

    path = Path(path)
    parts = _parts(path) if path.is_dir() else []
    try:
        return bool(parts) and META_KEY in (pq.read_schema(parts[0]).metadata or {})
    except Exception:
        return False


def _read_vectors(path: Path, column: str) -> Optional[np.ndarray]:
    import pyarrow.parquet as pq

    if Path(path).is_dir():
        pieces = [_read_vectors(part, column) for part in _parts(Path(path))]
        return None if any(p is None for p in pieces) or not pieces else np.concatenate(pieces)

    try:
        if column not in pq.read_schema(path).names:
            return None
        # one row group at a time into one preallocated array: the peak is the vectors plus one
        # row group, not the 3-4 copies that combining a whole column into numpy makes
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        n, out, at = parquet.metadata.num_rows, None, 0
        for batch in parquet.iter_batches(columns=[column], batch_size=8_192, use_threads=False):
            part = _vectors_from_arrow(batch.column(0))
            if out is None:
                out = np.empty((n, part.shape[1]), dtype=np.float32)
            out[at : at + len(part)] = part
            at += len(part)
        return out if out is not None else np.zeros((0, 0), np.float32)
    except Exception as exc:
        raise ResultsError(f"{path}: cannot read column {column} ({str(exc).splitlines()[0]})") from exc


def load_results(path: str | Path, *, embeddings: bool = False) -> Results:
    """Open a results file. Vectors are read on first access unless ``embeddings=True``.

    Raises :class:`ResultsError` (one line naming the file) for a missing, corrupt or foreign
    file, or one from an unknown format version.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        return _load_parts(path, embeddings)
    schema, payload = _read_payload(path)
    columns = _row_columns(path, schema)
    try:
        frame = pq.read_table(path, columns=columns).to_pandas()
    except Exception as exc:
        raise ResultsError(f"{path}: corrupt results file ({str(exc).splitlines()[0]})") from exc
    skipped = pd.DataFrame(payload.get("skipped") or {"path": [], "reason": []})
    results = Results(frame=frame, skipped=skipped, meta=payload.get("meta", {}), path=path)
    if embeddings:
        results.embeddings
    return results


def _row_columns(path: Path, schema) -> list[str]:
    """The non-vector columns of a results schema; ResultsError when a required one is missing."""
    columns = [n for n in schema.names if n not in VECTOR_COLUMNS]
    missing = [c for c in ("path", "x", "y", "cluster", "label") if c not in columns]
    if missing:
        raise ResultsError(f"{path}: results lack the column(s) {', '.join(missing)}")
    return columns


def _load_parts(folder: Path, embeddings: bool = False) -> Results:
    """A results folder (Parquet parts, e.g. written with ``save(..., rows_per_part=N)`` or by a
    Dask job from such parts): the rows through a Dask DataFrame, without the vectors, which
    stay on disk until asked for (one part at a time)."""
    parts = _parts(folder)
    if not parts:
        raise ResultsError(f"{folder}: a folder without Parquet parts, not bulk_panel results")
    schema, payload = _read_payload(parts[0])
    columns = _row_columns(folder, schema)
    try:
        import dask.dataframe as dd
    except ImportError as exc:
        raise ResultsError(f"{folder}: reading a results folder needs Dask (pip install 'bulk_panel[dask]')") from exc
    try:
        frame = dd.read_parquet([str(p) for p in parts], columns=columns).compute().reset_index(drop=True)
        # Dask gives string[pyarrow] with NA semantics; the results frame uses pandas' default str
        frame = frame.astype({c: "str" for c in frame.columns if pd.api.types.is_string_dtype(frame[c])})
    except Exception as exc:
        raise ResultsError(f"{folder}: corrupt results part ({str(exc).splitlines()[0]})") from exc
    skipped = pd.DataFrame(payload.get("skipped") or {"path": [], "reason": []})
    results = Results(frame=frame[columns], skipped=skipped, meta=payload.get("meta", {}), path=folder)
    if embeddings:
        results.embeddings
    return results


def build_frame(
    paths, hashes, sizes, xy, clusters, probabilities, outlier_scores, labels
) -> pd.DataFrame:
    """The results frame in its documented column order."""
    sizes = np.asarray(sizes).reshape(-1, 2)
    frame = pd.DataFrame(
        {
            "path": pd.Series(list(paths), dtype="str"),
            "content_hash": pd.Series(list(hashes), dtype="str"),
            "width": sizes[:, 0].astype(np.int32),
            "height": sizes[:, 1].astype(np.int32),
            "x": np.asarray(xy)[:, 0].astype(np.float32),
            "y": np.asarray(xy)[:, 1].astype(np.float32),
            "cluster": np.asarray(clusters).astype(np.int32),
            "probability": np.asarray(probabilities).astype(np.float32),
            "outlier_score": np.asarray(outlier_scores).astype(np.float32),
            "label": pd.Series(list(labels), dtype="str"),
        }
    )
    assert list(frame.columns) == RECORD_COLUMNS
    return frame
