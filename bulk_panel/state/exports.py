"""What leaves the session as a file: CSV and Parquet of the rows, a zip of the selected images.

Bytes for the browser; nothing is written on the server.

>>> store.to_csv_bytes("selection"); store.to_parquet_bytes("all")
>>> with store.to_zip_file() as fh: zipfile.ZipFile(fh).namelist()
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import IO, Optional

import pandas as pd

from .selection import Selection

__all__ = ["Exports"]


class Exports(Selection):
    """The exports of one session (a part of :class:`ResultsStore`)."""

    EXPORT_COLUMNS = ["path", "label", "label_source", "confidence", "cluster", "probability", "outlier_score",
                      "x", "y", "width", "height", "content_hash"]
    ZIP_SPOOL_BYTES = 16 << 20

    def export_frame(self, scope: str = "selection") -> pd.DataFrame:
        """The rows to export: ``'selection'`` (the table's rows) or ``'all'``."""
        rows = None if scope == "all" else self.selected_rows()
        return self.rows_frame(rows, [c for c in self.EXPORT_COLUMNS if c in self.columns]).reset_index(drop=True)

    def to_csv_bytes(self, scope: str = "selection") -> io.BytesIO:
        """CSV of the rows (``scope`` as in :meth:`export_frame`) as a file object."""
        return io.BytesIO(self.export_frame(scope).to_csv(index=False).encode("utf-8"))

    def to_parquet_bytes(self, scope: str = "selection") -> io.BytesIO:
        """Parquet of the rows as a file object."""
        out = io.BytesIO()
        self.export_frame(scope).to_parquet(out, index=False)
        out.seek(0)
        return out

    def zip_source(self) -> tuple[pd.DataFrame, Optional[Path]]:
        """The selected rows (path, label) and the image folder: what a zip of the selection holds."""
        root = self.results.image_root if self.results is not None else None
        return self.rows_frame(self.selected_rows(), ["path", "label"]), root

    def to_zip_file(self, max_memory: Optional[int] = None) -> IO[bytes]:
        """A zip of the selected images laid out ``label/filename``, as a file object at 0.

        For the FileDownload path (Jupyter, no server route): written into a
        ``SpooledTemporaryFile``, up to ``max_memory`` bytes (default 16 MiB) in memory, then on
        disk. The served app streams the same zip instead (``server.routes.ZipExportHandler``).

        >>> with store.to_zip_file() as fh: zipfile.ZipFile(fh).namelist()
        """
        from ..compute.thumbs import write_image_zip

        out = tempfile.SpooledTemporaryFile(max_size=self.ZIP_SPOOL_BYTES if max_memory is None else max_memory)
        write_image_zip(out, *self.zip_source())
        out.seek(0)
        return out
