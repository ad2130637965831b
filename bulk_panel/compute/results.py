"""The results file: one Parquet file per run, read back with :func:`load_results`.

>>> results = load_results("results.parquet")
>>> results.frame.head()        # path, x, y, cluster, label, probability, outlier_score, ...
>>> results.embeddings.shape    # float32, aligned with the rows (read on first access)
>>> results.skipped             # files that could not be used, with the reason
>>> results.meta["model"]
>>> lazy = load_results("results/", lazy=True)  # a folder of parts: path, content_hash stay on disk
>>> lazy.column("path", [5, 2])                 # read from the parts for those rows only

Layout: the frame's columns, plus ``embedding`` and ``cluster_coords`` as fixed-size float32
lists; the Parquet schema metadata key ``bulk_panel`` holds JSON with ``format``,
``version``, ``meta`` and ``skipped``. Writing is atomic (temporary file, then rename; a
folder: a new folder, then swapped in).
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

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
# a results folder: Parquet parts of at most this many rows
PART_ROWS = 250_000
PART_NAME = "part-{:05d}.parquet"
# opened lazily, a results folder keeps these columns on disk (70% of a row's memory at 1M rows)
DISK_COLUMNS = ("path", "content_hash")
# the row-group columns a lazy folder keeps after reading them (a hover or a page again: no read)
PART_CACHE_BYTES = 32 << 20
_VECTOR_ATTRIBUTES = {"embedding": "embeddings", "cluster_coords": "cluster_coords"}
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
    """What one run produced: rows (one per used image), vectors, skipped files and metadata.

    Opened from a folder with ``lazy=True``, ``frame`` holds the small columns only and the
    text columns (:attr:`on_disk`) are read from the parts for the rows asked for
    (:meth:`take`, :meth:`column`).

    >>> results.take([7, 3], ["path", "label"])      # same answer, in memory or on disk
    """

    frame: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"path": [], "reason": []}))
    meta: dict = field(default_factory=dict)
    path: Optional[Path] = None
    _embeddings: Optional[np.ndarray] = None
    _cluster_coords: Optional[np.ndarray] = None
    _parts: Optional["PartColumns"] = field(default=None, repr=False)

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

        return docs_from_frame(self.take(), self.embeddings)

    @property
    def image_root(self) -> Optional[Path]:
        root = self.meta.get("image_root")
        return Path(root) if root else None

    @property
    def on_disk(self) -> tuple[str, ...]:
        """The row columns left in the results folder, not in ``frame`` (``path``, ``content_hash``
        when opened with ``lazy=True``); ``()`` when every column is in memory."""
        if self._parts is None:
            return ()
        return tuple(c for c in self._parts.columns if c not in self.frame.columns)

    @property
    def columns(self) -> list[str]:
        """Every row column, in memory or on disk, in the file's order.

        >>> load_results("results/", lazy=True).columns   # ['path', 'content_hash', 'width', ...]
        """
        if not self.on_disk:
            return list(self.frame.columns)
        present = set(self.frame.columns) | set(self.on_disk)
        ordered = [c for c in self._parts.order if c in present]
        return ordered + [c for c in self.frame.columns if c not in ordered]

    def take(self, rows: Optional[Sequence[int]] = None, columns: Optional[Sequence[str]] = None,
             frame: Optional[pd.DataFrame] = None) -> pd.DataFrame:
        """The rows at positions ``rows`` (default: all, any order, repeats kept) with ``columns``
        (default: all), index = row positions. Columns on disk are read from the parts' row groups
        that hold those rows only. ``frame`` stands in for :attr:`frame`'s columns (a session's
        copy with its own labels; same rows).

        >>> results.take(np.array([9, 2, 9]), ["path", "label"])
        """
        frame = self.frame if frame is None else frame
        columns = self.columns if columns is None else list(columns)
        positions = None if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        picked = frame if positions is None else frame.iloc[positions]
        disk = [c for c in columns if c not in frame.columns]
        unknown = [c for c in disk if c not in self.on_disk]
        if unknown:
            raise KeyError(f"no column {', '.join(unknown)} in these results")
        if disk:
            self._parts.check(len(frame))
            read = self._parts.read(disk, positions)
            picked = picked.assign(**{c: read[c].to_pandas().array for c in disk})
        return picked[columns]

    def column(self, name: str, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """One column's values at positions ``rows`` (default: all), in memory or on disk.

        >>> results.column("content_hash", [4, 0])
        array(['…', '…'], dtype=object)
        """
        return self.take(rows, [name])[name].to_numpy()

    def save(self, path: str | Path, rows_per_part: Optional[int] = None) -> Path:
        """Write the results atomically to ``path`` (one Parquet file) and return the path.

        With ``rows_per_part``, or when ``path`` is already a results folder, write a folder of
        Parquet parts instead (each part a complete results file for its rows), which
        :func:`load_results` reads with ``pyarrow.dataset`` (and Dask can, part by part). Rows are written one row group at
        a time; columns left on disk (and vectors not read) are copied from the parts the
        results were opened from, a row group at a time, so a lazy folder is saved in bounded
        memory (into its own folder: the same parts, the new labels).
        """
        import pyarrow.parquet as pq

        path = Path(path)
        if rows_per_part or path.is_dir():
            return self._save_parts(path, rows_per_part)
        sizes = [len(self.frame)]
        atomic_write(path, lambda fh: _write_tables(self._tables(sizes), sizes,
                                                    lambda number, schema: pq.ParquetWriter(fh, schema)))
        self.path = path
        return path

    def _tables(self, sizes: Sequence[int]) -> Iterator:
        """The rows in order as Arrow tables of at most one row group each (see :meth:`_table`),
        none across the boundaries of files of ``sizes`` rows: vectors from memory (read once
        first), or, for a lazy folder, copied from its parts (a row group at a time) with the
        columns left on disk, when they were never read."""
        n = len(self.frame)
        unread = []
        if self._parts is not None:
            self._parts.check(n)
            unread = [name for name, attribute in _VECTOR_ATTRIBUTES.items()
                      if getattr(self, f"_{attribute}") is None and name in self._parts.names]
        vectors = {}
        for name, attribute in _VECTOR_ATTRIBUTES.items():
            values = None if name in unread else getattr(self, attribute)
            if values is not None and len(values) == n and values.ndim == 2 and values.shape[1]:
                vectors[name] = values
        if self._parts is None:
            for first, size in zip(np.cumsum([0, *sizes[:-1]]).tolist(), sizes):
                for start in range(first, first + max(size, 1), ROW_GROUP_ROWS):
                    yield self._table(start, min(first + size, start + ROW_GROUP_ROWS), vectors)
            return
        for start, stop, disk in self._parts.row_groups([*self.on_disk, *unread]):
            yield self._table(start, stop, vectors, disk)

    def _table(self, start: int, stop: int, vectors: dict, disk=None):
        """The Arrow table of rows ``start:stop`` with their ``vectors`` (name → all rows) and
        the results' metadata; ``disk``: the same rows' columns read from the parts."""
        import pyarrow as pa

        frame = self.frame.iloc[start:stop].reset_index(drop=True)
        if disk is not None and self.on_disk:
            frame = frame.assign(**{c: disk.column(c).to_pandas().array for c in self.on_disk})[self.columns]
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for name in VECTOR_COLUMNS:
            if name in vectors:
                table = table.append_column(name, _vectors_to_arrow(vectors[name][start:stop]))
            elif disk is not None and name in disk.column_names:
                table = table.append_column(name, disk.column(name))
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "meta": self.meta,
            "skipped": self.skipped[["path", "reason"]].to_dict("list"),
        }
        metadata = dict(table.schema.metadata or {})
        metadata[META_KEY] = json.dumps(payload, default=str).encode()
        return table.replace_schema_metadata(metadata)

    def _save_parts(self, folder: Path, rows_per_part: Optional[int] = None) -> Path:
        """Write ``part-00000.parquet``… into a new folder, then swap it in for ``folder``: a
        crash leaves the old folder (or the new one) whole, plus a hidden leftover to delete.

        Parts of ``rows_per_part`` rows; by default, a lazy folder keeps its parts' sizes and
        other results get parts of :data:`PART_ROWS`."""
        import pyarrow.parquet as pq

        n = len(self.frame)
        if rows_per_part is None and self._parts is not None and self._parts.n_rows == n:
            sizes = self._parts.part_rows
        else:
            step = rows_per_part or PART_ROWS
            sizes = [min(step, n - start) for start in range(0, n, step)] or [0]
        token = uuid.uuid4().hex[:8]
        staging = folder.with_name(f".{folder.name}.{token}.tmp")
        staging.mkdir(parents=True)
        same = self._parts is not None and folder.resolve() == self._parts.folder.resolve()
        try:
            _write_tables(self._tables(sizes), sizes,
                          lambda number, schema: pq.ParquetWriter(staging / PART_NAME.format(number), schema))
            old = folder.with_name(f".{folder.name}.{token}.old")
            with self._parts.lock if same else contextlib.nullcontext():  # readers of the old parts wait for the new
                if folder.exists():
                    os.replace(folder, old)
                os.replace(staging, folder)
                if same:
                    self._parts.index()  # the same rows' columns, now in the new parts
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        self.path = folder
        return folder

    def to_csv(self, path: str | Path | None = None, *, seed_columns: bool = False) -> Optional[str]:
        """CSV of the rows; ``seed_columns=True`` writes the seed app's ``text,x,y,filename,color``.

        Returns the text when ``path`` is None.
        """
        frame = self.take()
        if seed_columns:
            root = self.image_root
            out = pd.DataFrame(
                {
                    "text": frame["path"].map(lambda p: p.rsplit("/", 1)[-1]),
                    "x": frame["x"],
                    "y": frame["y"],
                    "filename": frame["path"].map(lambda p: str(root / p) if root else p),
                    "color": frame["cluster"],
                }
            )
        else:
            out = frame
        if path is None:
            return out.to_csv(index=False)
        text = out.to_csv(index=False)
        atomic_write(Path(path), lambda fh: fh.write(text.encode()))
        return None


def _write_tables(tables: Iterable, sizes: Sequence[int], writer_for) -> None:
    """Write Arrow ``tables`` (the rows, in order) as ``len(sizes)`` Parquet files of ``sizes``
    rows each, in row groups of at most :data:`ROW_GROUP_ROWS`; ``writer_for(number, schema)``
    opens file ``number``. No rows at all: one file with the schema and no rows."""
    sizes = [size for size in sizes if size] or [0]  # a folder's empty parts are not written again
    writer, number, room, schema = None, 0, sizes[0], None
    try:
        for table in tables:
            schema = schema or table.schema
            while table.num_rows:
                if room == 0:
                    writer.close()
                    writer, number = None, number + 1
                    room = sizes[number]
                if writer is None:
                    writer = writer_for(number, schema)
                head, table = table.slice(0, room), table.slice(room)
                writer.write_table(head, row_group_size=ROW_GROUP_ROWS)
                room -= head.num_rows
        if writer is None:
            writer = writer_for(0, schema)
            writer.write_table(schema.empty_table())
    finally:
        if writer is not None:
            writer.close()


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


def _row_columns(path: Path, schema) -> list[str]:
    """The non-vector columns of a results schema; ResultsError when a required one is missing."""
    columns = [n for n in schema.names if n not in VECTOR_COLUMNS]
    missing = [c for c in ("path", "x", "y", "cluster", "label") if c not in columns]
    if missing:
        raise ResultsError(f"{path}: results lack the column(s) {', '.join(missing)}")
    return columns


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
