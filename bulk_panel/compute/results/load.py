"""Opening results: one Parquet file whole, or a folder of parts (lazily: text columns on disk).

>>> results = load_results("results.parquet")
>>> lazy = load_results("results/", lazy=True)   # path, content_hash stay in the parts
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .format import ResultsError, _first_line, _read_payload, _row_columns
from .frame import Results
from .parts import DISK_COLUMNS, PartColumns, _parts


def load_results(path: str | Path, *, embeddings: bool = False, lazy: bool = False) -> Results:
    """Open a results file. Vectors are read on first access unless ``embeddings=True``.

    A results folder (Parquet parts) with ``lazy=True`` keeps its text columns
    (:data:`DISK_COLUMNS`) on disk: ``frame`` holds the small columns and
    :meth:`Results.take` / :meth:`Results.column` read the others for the rows asked for (the
    dashboard's way at millions of rows). A single file is read whole either way.

    Raises :class:`ResultsError` (one line naming the file) for a missing, corrupt or foreign
    file, or one from an unknown format version.

    >>> load_results("results/", lazy=True).frame.columns   # no path, no content_hash
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if path.is_dir():
        return _load_parts(path, embeddings, lazy)
    schema, payload = _read_payload(path)
    columns = _row_columns(path, schema)
    try:
        frame = pq.read_table(path, columns=columns).to_pandas()
    except Exception as exc:
        raise ResultsError(f"{path}: corrupt results file ({_first_line(exc)})") from exc
    return _results(frame, payload, path, embeddings)


def _results(frame: pd.DataFrame, payload: dict, path: Path, embeddings: bool, parts=None) -> Results:
    skipped = pd.DataFrame(payload.get("skipped") or {"path": [], "reason": []})
    results = Results(frame=frame, skipped=skipped, meta=payload.get("meta", {}), path=path, _parts=parts)
    if embeddings:
        results.embeddings
    return results


def _load_parts(folder: Path, embeddings: bool = False, lazy: bool = False) -> Results:
    """A results folder (Parquet parts, e.g. written with ``save(..., rows_per_part=N)`` or by a
    Dask job from such parts): the rows read with ``pyarrow.dataset`` (the parts in order),
    without the vectors, which stay on disk until asked for (one part at a time); ``lazy``:
    without the text columns either (a :class:`PartColumns` reads them when asked)."""
    parts = _parts(folder)
    if not parts:
        raise ResultsError(f"{folder}: a folder without Parquet parts, not bulk_panel results")
    schema, payload = _read_payload(parts[0])
    columns = _row_columns(folder, schema)
    disk = [c for c in columns if c in DISK_COLUMNS] if lazy else []
    kept = [c for c in columns if c not in disk]
    import pyarrow.dataset as ds

    on_disk = PartColumns(folder, disk, order=columns) if disk else None
    try:
        frame = ds.dataset([str(p) for p in parts], format="parquet").to_table(columns=kept).to_pandas()
    except Exception as exc:
        raise ResultsError(f"{folder}: corrupt results part ({_first_line(exc)})") from exc
    if on_disk is not None and on_disk.n_rows != len(frame):
        raise ResultsError(f"{folder}: the parts changed while they were read; open the results again")
    return _results(frame[kept], payload, folder, embeddings, on_disk)
