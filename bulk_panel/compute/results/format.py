"""The results file format: its header, its errors, and its vectors as Arrow lists.

Layout: the frame's columns, plus ``embedding`` and ``cluster_coords`` as fixed-size float32
lists; the Parquet schema metadata key ``bulk_panel`` holds JSON with ``format``,
``version``, ``meta`` and ``skipped``. A file from an unknown format or version, or one
lacking a required column, is a :class:`ResultsError` naming the file.

>>> schema, payload = _read_payload(Path("results.parquet"))
>>> payload["meta"]["model"], _row_columns(Path("results.parquet"), schema)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FORMAT = "bulk_panel.results"
VERSION = 1
META_KEY = b"bulk_panel"
VECTOR_COLUMNS = ("embedding", "cluster_coords")


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


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _read_payload(path: Path):
    import pyarrow.parquet as pq

    if not path.exists():
        raise ResultsError(f"{path}: no such results file")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise ResultsError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc
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


def _row_columns(path: Path, schema) -> list[str]:
    """The non-vector columns of a results schema; ResultsError when a required one is missing."""
    columns = [n for n in schema.names if n not in VECTOR_COLUMNS]
    missing = [c for c in ("path", "x", "y", "cluster", "label") if c not in columns]
    if missing:
        raise ResultsError(f"{path}: results lack the column(s) {', '.join(missing)}")
    return columns
