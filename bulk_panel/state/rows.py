"""The loaded results and their rows: the base every part of :class:`ResultsStore` builds on.

The frame, each row's label and its colour, the label chooser's options ("label (count)"), and
the columns wherever they live (in memory, or on disk for a folder of parts), with the lookups
made once per frame (label codes, file names).

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
from ..compute.schema import LABEL_SOURCES, NOISE_LABEL
from .colours import assign_colours
from .memo import Memo, shared_memo

__all__ = ["Rows", "base_names", "with_label_sources"]


def with_label_sources(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the ``label_source`` (categorical, :data:`LABEL_SOURCES`) and
    ``confidence`` (float32) columns: as they are, or, for results that have none (fresh from
    the pipeline, or written before labels had sources), every label from its cluster."""
    if "label_source" in frame.columns and "confidence" in frame.columns:
        if not isinstance(frame["label_source"].dtype, pd.CategoricalDtype):  # e.g. read back as text
            frame = frame.assign(label_source=pd.Categorical(frame["label_source"], categories=LABEL_SOURCES))
        return frame
    n = len(frame)
    return frame.assign(label_source=pd.Categorical.from_codes(np.zeros(n, np.int8), categories=LABEL_SOURCES),
                        confidence=np.full(n, np.nan, dtype=np.float32))


class Rows(param.Parameterized):
    """Results, frame, labels and colours; ``frame`` is replaced (never changed in place) on
    every edit, so anything that depends on it updates."""

    results = param.ClassSelector(class_=Results, allow_None=True, doc="The loaded results (file, meta, vectors).")
    frame = param.DataFrame(default=None, allow_None=True, doc="The rows, with the current labels (reassigned on change).")
    selected_labels = param.ListSelector(default=[], objects=[], doc="Labels that narrow the selection (filled from it).")
    colors = param.Dict(default={}, doc="Label → colour; a label keeps its colour for the session.")
    message = param.String(default="", doc="A one-line report of the last action, for the status line.")

    _source: Optional[Results] = None  # the results as loaded, shared by the sessions that loaded them

    def _of_results(self, name: str) -> Memo:
        """The memo ``name`` for what the loaded results' paths and positions give (they never
        change with labels): one per process, shared by every session on the same results."""
        return self.memo(name) if self._source is None else shared_memo(self._source, name)

    def memo(self, name: str) -> Memo:
        """This session's single-entry cache called ``name`` (made on first use; see :class:`Memo`)."""
        memos = self.__dict__.setdefault("_memos", {})
        if name not in memos:
            memos[name] = Memo()
        return memos[name]

    def _set_frame(self, frame: pd.DataFrame) -> None:
        frame = with_label_sources(frame)
        labels = self._chooser_order(frame)[0]
        colors = assign_colours(labels, self.colors)
        kept = [label for label in self.selected_labels if label in labels]
        with param.parameterized.batch_call_watchers(self):
            self.colors = colors
            self._show_counts(frame, self._counted_rows())
            self.selected_labels = kept
            self.frame = frame

    # ---------------------------------------------------------------------------------
    # the label chooser's options: "label (count)"
    # ---------------------------------------------------------------------------------
    def _counted_rows(self) -> Optional[np.ndarray]:
        """The rows the chooser counts each label in; None: all rows (see :class:`Selection`)."""
        return None

    def _show_counts(self, frame: Optional[pd.DataFrame], rows: Optional[np.ndarray]) -> None:
        """Make the chooser's options read ``label (count)``, each count the label's rows among
        ``rows`` ('label (0 of total)' for a label with none there; all rows: ``rows`` None).

        One ``bincount`` over the label codes of ``rows`` and one short text per label; the
        options are set only when their text changes, and the chosen labels stay as they are."""
        if frame is None:
            return
        names = self.memo("chooser names").get((frame, rows), lambda: self._chooser_names(frame, rows))
        if names != self.param.selected_labels.names:
            # the chooser shows the text and gives back the label itself; the text is HTML-escaped
            # because Bokeh's MultiChoice (Choices.js) renders option text as HTML
            self.param.selected_labels.objects = names

    def _chooser_names(self, frame: pd.DataFrame, rows: Optional[np.ndarray]) -> dict[str, str]:
        codes, names = self.label_codes(frame)
        labels, order, totals = self._chooser_order(frame)
        if rows is None:
            counts = totals
        else:
            rows = np.asarray(rows, dtype=np.int64)
            counts = np.bincount(codes[rows[rows < len(codes)]], minlength=len(names))
        shown = {}
        for label, code in zip(labels, order):
            count, total = int(counts[code]), int(totals[code])
            text = f"{label} ({count:,})" if count or rows is None else f"{label} (0 of {total:,})"
            shown[html.escape(text)] = label
        return shown

    def _chooser_order(self, frame: pd.DataFrame) -> tuple[list[str], list[int], np.ndarray]:
        """The labels in the chooser's order (:meth:`sorted_labels`), their codes in
        :meth:`label_codes`, and each code's row count; once per frame."""
        def order():
            codes, names = self.label_codes(frame)
            position = {str(label): code for code, label in enumerate(names)}
            labels = self.sorted_labels(frame)
            return labels, [position[label] for label in labels], np.bincount(codes, minlength=len(names))

        return shared_memo(frame, "chooser order").get((), order)

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

    def label_codes(self, frame: Optional[pd.DataFrame] = None) -> tuple[np.ndarray, np.ndarray]:
        """The label column of ``frame`` (default: :attr:`frame`) factorised once per frame
        (and process: sessions that have not changed a label share it): (int codes per row,
        label names)."""
        frame = self.frame if frame is None else frame

        def factorise():
            codes, names = pd.factorize(frame["label"], sort=False)
            return np.asarray(codes, dtype=np.intp), np.asarray(names, dtype=object)

        return shared_memo(frame, "label codes").get((), factorise)

    def file_names(self, rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """The file names (each path's last part) of the rows at positions ``rows`` (default: all).

        Paths in memory: every name is made once per loaded results and process (the sessions
        on the same results share them). Paths on disk (a lazy folder): the names of these rows
        only, from their paths.

        >>> store.file_names([0])
        array(['tom.jpg'], dtype=object)
        """
        if "path" not in self.frame:
            return base_names(self.values("path", rows))
        # paths change only with new results, never with labels
        names = self._of_results("file names").get((len(self.frame),), lambda: base_names(self.frame["path"]))
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
