"""Results: what one run produced (rows, vectors, skipped files, metadata), and writing it.

:meth:`Results.take` / :meth:`Results.column` answer rows in memory or, for a folder opened
lazily, from its parts; :meth:`Results.save` writes one Parquet file or a folder of parts,
atomically (temporary file, then rename; a folder: a new folder, then swapped in).
:func:`build_frame` lays out a run's rows in the documented column order.

>>> results = Results(frame=build_frame(paths, hashes, sizes, xy, clusters, probs, scores, labels))
>>> results.save("results.parquet")
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

import numpy as np
import pandas as pd

from ..cache import atomic_write
from ..schema import RECORD_COLUMNS
from .format import FORMAT, META_KEY, VECTOR_COLUMNS, VERSION, _vectors_to_arrow
from .parts import PART_NAME, PART_ROWS, PartColumns, _read_vectors

# rows per Parquet row group: readers hold one row group's column at a time (16k × 1280 floats
# = 80 MB), so vectors of any size load at about their own size in memory
ROW_GROUP_ROWS = 16_384
_VECTOR_ATTRIBUTES = {"embedding": "embeddings", "cluster_coords": "cluster_coords"}
SEED_CSV_COLUMNS = ["text", "x", "y", "filename", "color"]


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
    # vectors read from the file, by column; shallow copies (each session's) share this dict, so
    # they are read once per process (a copy's rows are the same; only its labels may differ)
    _read: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def embeddings(self) -> np.ndarray:
        """float32 embeddings aligned with ``frame`` (read from the file on first access)."""
        return self._embeddings if self._embeddings is not None else self._vectors("embedding")

    @property
    def cluster_coords(self) -> Optional[np.ndarray]:
        """The clustering-space coordinates (n × cluster_dims) the clusters were found in."""
        return self._cluster_coords if self._cluster_coords is not None else self._vectors("cluster_coords")

    def _vectors(self, column: str) -> Optional[np.ndarray]:
        if self.path is None:
            return None
        if column not in self._read:
            self._read[column] = _read_vectors(self.path, column)
        return self._read[column]

    @functools.cached_property
    def docs(self):
        """The rows as a ``DocList[ImageRecord]`` with embeddings (built on first access)."""
        from ..records import docs_from_frame  # DocArray imports torch: only when asked

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
