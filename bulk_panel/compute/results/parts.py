"""A results folder: Parquet parts in row order, and the columns a lazy folder leaves on disk.

:class:`PartColumns` reads ``path`` and ``content_hash`` (:data:`DISK_COLUMNS`) for the rows
asked for, one touched row group at a time, and keeps the recently read ones;
:func:`is_results_folder` tells a folder of parts from a folder of images; vectors are read
from a file or a folder's parts one row group at a time.

>>> is_results_folder("results/")   # part-00000.parquet … with bulk_panel metadata
>>> PartColumns(Path("results"), ["path"], order=columns).read(["path"], np.array([9, 2]))
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from .format import META_KEY, ResultsError, _first_line, _vectors_from_arrow

# a results folder: Parquet parts of at most this many rows
PART_ROWS = 250_000
PART_NAME = "part-{:05d}.parquet"
# opened lazily, a results folder keeps these columns on disk (70% of a row's memory at 1M rows)
DISK_COLUMNS = ("path", "content_hash")
# the row-group columns a lazy folder keeps after reading them (a hover or a page again: no read)
PART_CACHE_BYTES = 32 << 20


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
        raise ResultsError(f"{path}: cannot read column {column} ({_first_line(exc)})") from exc


class PartColumns:
    """The columns a results folder keeps on disk (``path``, ``content_hash``), read for the
    rows asked for: row positions map to the parts' row groups through the Parquet metadata,
    only the touched row groups' columns are read, and recently read ones are kept (at most
    ``cache_bytes``, least recently used dropped first; a read never drops what it uses
    itself, so a selection wider than the cache keeps the part that fits instead of
    flushing it: the same selection again reads only the rest). Thread-safe.

    A part deleted or rewritten since the folder was opened gives a one-line ResultsError
    naming it.

    >>> parts = PartColumns(Path("results"), ["path", "content_hash"], order=columns)
    >>> parts.read(["path"], np.array([9, 2, 9]))["path"]   # a pyarrow array, in that order
    """

    def __init__(self, folder: Path, columns: Sequence[str], order: Sequence[str],
                 cache_bytes: int = PART_CACHE_BYTES):
        self.folder = Path(folder)
        self.columns = tuple(columns)
        self.order = list(order)
        self.cache_bytes = int(cache_bytes)
        self.lock = threading.RLock()
        self._cache: OrderedDict = OrderedDict()  # (row group, column) → pyarrow array
        self._cached = 0
        self.index()

    def index(self) -> None:
        """Read the parts' layout (files, row groups, row counts) again; forget what was read."""
        import pyarrow.parquet as pq

        files, stamps, groups, counts, part_rows, types, names = [], [], [], [], [], {}, []
        for part in _parts(self.folder):
            try:
                stat = part.stat()
                meta = pq.read_metadata(part)
                schema = meta.schema.to_arrow_schema()
            except Exception as exc:
                raise ResultsError(f"{part}: not a readable Parquet file ({_first_line(exc)})") from exc
            missing = [c for c in self.columns if c not in schema.names]
            if missing:
                raise ResultsError(f"{part}: this part lacks the column(s) {', '.join(missing)}")
            groups += [(len(files), g) for g in range(meta.num_row_groups)]
            counts += [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            part_rows.append(meta.num_rows)
            files.append(part)
            stamps.append((stat.st_mtime_ns, stat.st_size))
            types = types or {c: schema.field(c).type for c in self.columns}
            names = names or list(schema.names)
        with self.lock:
            self.files, self._stamps, self._groups, self.part_rows = files, stamps, groups, part_rows
            self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)
            self._types, self.names = types, names
            self._cache.clear()
            self._cached = 0

    @property
    def n_rows(self) -> int:
        return int(self._starts[-1])

    def check(self, n_rows: int) -> None:
        """A ResultsError unless the parts hold ``n_rows`` rows (those of the frame in memory)."""
        if n_rows != self.n_rows:
            raise ResultsError(f"{self.folder}: {self.n_rows:,} rows on disk, {n_rows:,} in memory")

    def read(self, names: Sequence[str], rows: Optional[np.ndarray] = None) -> dict:
        """``{column: pyarrow array}`` of ``names`` at row positions ``rows`` (default: all), in
        the order given (repeats kept); IndexError for a position outside the rows."""
        import pyarrow as pa

        names = list(names)
        with self.lock:
            if rows is None:
                touched = np.arange(len(self._groups))
                loaded = self._fetch(touched, names)
                return {n: _concat([loaded[g][n] for g in touched], self._types[n]) for n in names}
            rows = np.asarray(rows, dtype=np.int64).reshape(-1)
            if len(rows) and (rows.min() < 0 or rows.max() >= self.n_rows):
                raise IndexError(f"row positions outside 0…{self.n_rows - 1}")
            group = np.searchsorted(self._starts, rows, side="right") - 1
            order = np.argsort(group, kind="stable")
            touched, first = np.unique(group[order], return_index=True)
            loaded = self._fetch(touched, names)
            pieces = {n: [] for n in names}
            for g, start, stop in zip(touched, first, [*first[1:], len(rows)]):
                local = pa.array(rows[order[start:stop]] - self._starts[g])
                for n in names:
                    pieces[n].append(loaded[g][n].take(local))
            inverse = np.empty(len(rows), dtype=np.int64)
            inverse[order] = np.arange(len(rows))
            inverse = pa.array(inverse)
            return {n: _concat(pieces[n], self._types[n]).take(inverse) for n in names}

    def row_groups(self, names: Sequence[str]) -> Iterator[tuple[int, int, object]]:
        """``(start, stop, table of names)`` for every row group in row order, read one at a
        time and not kept (for copying a folder in bounded memory)."""
        parquet, current = None, None
        try:
            for number, (part, group) in enumerate(list(self._groups)):
                if part != current:
                    if parquet is not None:
                        parquet.close()
                    parquet, current = self._open(part), part
                table = self._read(parquet, part, group, list(names))
                yield int(self._starts[number]), int(self._starts[number + 1]), table
        finally:
            if parquet is not None:
                parquet.close()

    def _fetch(self, touched: np.ndarray, names: list[str]) -> dict:
        """``{row group: {column: array}}`` for the touched row groups, from the cache or the parts."""
        out, wanted, used = {}, {}, {(g, n) for g in touched.tolist() for n in names}
        for g in touched.tolist():
            out[g] = {}
            for n in names:
                if (g, n) in self._cache:
                    self._cache.move_to_end((g, n))
                    out[g][n] = self._cache[(g, n)]
            need = [n for n in names if n not in out[g]]
            if need:
                wanted.setdefault(self._groups[g][0], []).append((g, need))
        for part, groups in wanted.items():
            parquet = self._open(part)
            try:
                for g, need in groups:
                    table = self._read(parquet, part, self._groups[g][1], need)
                    for n in need:
                        out[g][n] = self._keep((g, n), table.column(n).combine_chunks(), used)
            finally:
                parquet.close()
        return out

    def _keep(self, key: tuple, array, used: set):
        """Cache ``array`` under ``key`` if it fits after dropping entries this read doesn't use."""
        self._cache[key] = array
        self._cached += array.nbytes
        while self._cached > self.cache_bytes:
            oldest = next(iter(self._cache))
            if oldest in used:  # the rest is this read's own: keep those, not this one
                oldest = key
            self._cached -= self._cache.pop(oldest).nbytes
        return array

    def _open(self, part: int):
        import pyarrow.parquet as pq

        path = self.files[part]
        try:
            stat = path.stat()
        except FileNotFoundError as exc:
            raise ResultsError(f"{path}: this part of the results is gone (deleted or moved after the results "
                               "were opened); open them again") from exc
        except OSError as exc:
            raise ResultsError(f"{path}: cannot read this part ({_first_line(exc)})") from exc
        if (stat.st_mtime_ns, stat.st_size) != self._stamps[part]:
            raise ResultsError(f"{path}: this part changed after the results were opened; open them again")
        try:
            return pq.ParquetFile(path, pre_buffer=False)
        except Exception as exc:
            raise ResultsError(f"{path}: not a readable Parquet file ({_first_line(exc)})") from exc

    def _read(self, parquet, part: int, group: int, names: list[str]):
        try:
            return parquet.read_row_group(group, columns=names, use_threads=False)
        except Exception as exc:
            raise ResultsError(f"{self.files[part]}: cannot read {', '.join(names)} ({_first_line(exc)})") from exc


def _concat(arrays: list, kind):
    import pyarrow as pa

    return pa.concat_arrays(arrays) if arrays else pa.array([], type=kind)
