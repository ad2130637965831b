"""The loaded results and their rows: the base every part of :class:`ResultsStore` builds on.

The frame, each row's label and its colour, the label chooser's options, and the columns
wherever they live (in memory, or on disk for a folder of parts), with the lookups made once
per frame (label codes, file names).

>>> store.rows_frame(store.selected_rows(), ["path", "label"])
>>> store.values("content_hash", [3, 1])
"""
from __future__ import annotations

import html
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import param

from ..compute.results import Results
from ..compute.schema import NOISE_LABEL
from .colours import assign_colours
from .memo import Memo

__all__ = ["Rows", "base_names"]


class Rows(param.Parameterized):
    """Results, frame, labels and colours; ``frame`` is replaced (never changed in place) on
    every edit, so anything that depends on it updates."""

    results = param.ClassSelector(class_=Results, allow_None=True, doc="The loaded results (file, meta, vectors).")
    frame = param.DataFrame(default=None, allow_None=True, doc="The rows, with the current labels (reassigned on change).")
    selected_labels = param.ListSelector(default=[], objects=[], doc="Labels that narrow the selection (filled from it).")
    colors = param.Dict(default={}, doc="Label → colour; a label keeps its colour for the session.")
    message = param.String(default="", doc="A one-line report of the last action, for the status line.")


    def memo(self, name: str) -> Memo:
        """This session's single-entry cache called ``name`` (made on first use; see :class:`Memo`)."""
        memos = self.__dict__.setdefault("_memos", {})
        if name not in memos:
            memos[name] = Memo()
        return memos[name]

    def _set_frame(self, frame: pd.DataFrame) -> None:
        labels = self.sorted_labels(frame)
        colors = assign_colours(labels, self.colors)
        kept = [label for label in self.selected_labels if label in labels]
        counts = frame["label"].value_counts(sort=False) if len(frame) else {}
        with param.parameterized.batch_call_watchers(self):
            self.colors = colors
            # the chooser shows "label (count)" and gives back the label itself; the shown text is
            # HTML-escaped because Bokeh's MultiChoice (Choices.js) renders option text as HTML
            self.param.selected_labels.objects = {
                html.escape(f"{label} ({int(counts[label]):,})"): label for label in labels
            }
            self.selected_labels = kept
            self.frame = frame

    @staticmethod
    def sorted_labels(frame: Optional[pd.DataFrame]) -> list[str]:
        """The frame's labels: 'cluster N' in number order, then others by name, noise last."""
        if frame is None or len(frame) == 0:
            return []
        names = pd.unique(frame["label"].astype(str))

        def key(name: str):
            if name == NOISE_LABEL:
                return (2, 0, "")
            head, _, tail = name.partition(" ")
            if head == "cluster" and tail.isdigit():
                return (0, int(tail), "")
            return (1, 0, name)

        return sorted(names, key=key)

    @property
    def n_rows(self) -> int:
        return 0 if self.frame is None else len(self.frame)

    @property
    def columns(self) -> list[str]:
        """Every row column: the frame's, plus those the results keep on disk, in the file's order."""
        results = self.results
        if results is None or not results.on_disk:
            return list(self.frame.columns)
        return results.columns + [c for c in self.frame.columns if c not in results.columns]

    def rows_frame(self, rows: Optional[Sequence[int]] = None, columns: Optional[Sequence[str]] = None) -> pd.DataFrame:
        """The rows at positions ``rows`` (default: all; any order, repeats kept) with ``columns``
        (default: :attr:`columns`) and the current labels, index = row positions. Columns the
        results keep on disk are read for these rows only.

        >>> store.rows_frame(store.selected_rows(), ["path", "label"])
        """
        columns = self.columns if columns is None else list(columns)
        if self.results is None or not self.results.on_disk:
            return (self.frame if rows is None else self.frame.iloc[np.asarray(rows, dtype=np.int64)])[columns]
        return self.results.take(rows, columns, frame=self.frame)

    def values(self, name: str, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """One column's values at positions ``rows`` (default: all), wherever the column lives.

        >>> store.values("content_hash", [3, 1])
        """
        return self.rows_frame(rows, [name])[name].to_numpy()

    def label_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """The label column factorised once per frame: (int codes per row, label names)."""
        def factorise():
            codes, names = pd.factorize(self.frame["label"], sort=False)
            return np.asarray(codes, dtype=np.intp), np.asarray(names, dtype=object)

        return self.memo("label codes").get((self.frame,), factorise)

    def file_names(self, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """The file names (each path's last part) of the rows at positions ``rows`` (default: all).

        Paths in memory: every name is made once per loaded results. Paths on disk (a lazy
        folder): the names of these rows only, from their paths.

        >>> store.file_names([0])
        array(['tom.jpg'], dtype=object)
        """
        if "path" not in self.frame:
            return base_names(self.values("path", rows))
        # paths change only with new results, never with labels
        names = self.memo("file names").get((self.results, len(self.frame)), lambda: base_names(self.frame["path"]))
        return names if rows is None else names[np.asarray(rows, dtype=np.int64)]

    def _xy(self) -> tuple[np.ndarray, np.ndarray]:
        return self.frame["x"].to_numpy(), self.frame["y"].to_numpy()


def base_names(paths) -> np.ndarray:
    """Each path's last part (after the last '/'), as an object array of str.

    >>> base_names(["cats/tom.jpg"])
    array(['tom.jpg'], dtype=object)
    """
    # (?s): a name may hold a newline, and the hover caption (rsplit) cuts at the last '/' too
    return pd.Series(paths, dtype="str").str.replace(r"(?s)^.*/", "", regex=True).to_numpy()
