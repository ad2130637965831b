"""The selection: rows chosen on the map (box, lasso, label click), narrowed by the label
chooser, the focused and the hovered row; what the table shows.

>>> store.select_box(-1, -1, 1, 1)       # rows whose (x, y) lie in the box
>>> store.selected_rows()                # what label edits and exports act on
>>> store.selected_frame()               # the table's rows
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd
import param

from ..compute.results import ResultsError
from .geometry import NearestPoint, points_in_box, points_in_polygon
from .rows import Rows, base_names

__all__ = ["EMPTY", "Selection"]

EMPTY = np.empty(0, dtype=np.int64)


class Selection(Rows):
    """Selection, label filter, focus and hover of one session (a part of :class:`ResultsStore`).

    ``selection`` holds row positions into ``frame``; ``selected_labels`` narrows it (and is
    refilled with the labels a new selection contains, as in the seed app). The chooser's
    options count each label's rows that choosing it shows: its rows in ``selection`` (before
    the chooser narrows it), or all its rows when nothing is selected or ``only_selected`` is off.
    """

    selection = param.Array(default=EMPTY, doc="Row positions into frame chosen on the map (box, lasso, label click).")
    only_selected = param.Boolean(
        default=True, doc="Label choice filters the map selection only; off: chosen labels add all their rows."
    )
    focus = param.Integer(default=None, allow_None=True, doc="Row position shown large in the preview.")
    hover = param.Integer(default=None, allow_None=True, doc="Row position nearest the cursor on the map.")
    table_limit = param.Integer(
        default=10_000, bounds=(1, None),
        doc="The selection table lists at most this many rows (a table of a million rows helps nobody and "
            "costs seconds); counts, label edits and exports always use every selected row.",
    )

    _selecting = False  # _select sets selection and labels together

    def __init__(self, **params):
        super().__init__(**params)
        self.param.watch(self._labels_from_selection, "selection")
        self.param.watch(lambda event: self._show_counts(self.frame, self._counted_rows()), "only_selected")

    def _select(self, rows: np.ndarray) -> int:
        """Make ``rows`` the selection and fill the label chooser in ONE update, so everything
        derived from both (table, highlight, counts) is computed once, not twice."""
        rows = np.asarray(rows, dtype=np.int64)
        self._selecting = True
        try:
            with param.parameterized.batch_call_watchers(self):
                # the counts first: a chooser then shows the new labels with their new texts at once
                self._show_counts(self.frame, self._counted_rows(rows))
                self.param.update(selection=rows, selected_labels=self._labels_in(rows))
        finally:
            self._selecting = False
        return len(rows)

    def select_box(self, x0: float, y0: float, x1: float, y1: float) -> int:
        """Select the rows whose map position lies in the box; returns how many."""
        return self._select(points_in_box(*self._xy(), x0, y0, x1, y1) if self.n_rows else EMPTY)

    def select_polygon(self, xs: Sequence[float], ys: Sequence[float]) -> int:
        """Select the rows inside the polygon (a lasso); returns how many."""
        return self._select(points_in_polygon(*self._xy(), xs, ys) if self.n_rows else EMPTY)

    def select_labels(self, labels: Sequence[str]) -> int:
        """Select all rows carrying one of ``labels`` (a click in the label summary)."""
        if not self.n_rows:
            return 0
        return self._select(np.flatnonzero(self.frame["label"].isin(list(labels)).to_numpy()))

    def select_rows(self, rows: Sequence[int]) -> int:
        """Select exactly these row positions (e.g. the duplicates marked to drop)."""
        return self._select(np.unique(np.asarray(rows, dtype=np.int64)))

    def clear_selection(self) -> None:
        """Nothing selected, no label filter."""
        with param.parameterized.batch_call_watchers(self):
            self.selection = EMPTY.copy()
            self.selected_labels = []
            self.focus = None

    def clear_labels(self) -> None:
        """Empty the label chooser (the seed's 'Clear labels')."""
        self.selected_labels = []

    def nearest(self, x: float, y: float, max_distance: float = np.inf) -> Optional[int]:
        """Row position of the point nearest (x, y), or None when none lies within ``max_distance``.

        The lookup (:class:`~bulk_panel.state.geometry.NearestPoint`) is built once per loaded
        results (positions never change with labels).

        >>> store.nearest(0.5, -1.2, max_distance=0.1)
        """
        if not self.n_rows or x is None or y is None:
            return None
        nearest = self._of_results("nearest point").get((), lambda: NearestPoint(*self._xy()))
        row, distance = nearest.query(x, y)
        return row if distance <= max_distance else None

    def warm(self) -> None:
        """Build the lookups a first selection or hover needs (file names, label codes, the
        nearest-point index) ahead of time; safe to call from a worker thread."""
        if self.n_rows:
            self.file_names([0])  # every name, when the paths are in memory
            self.label_codes()
            self.nearest(float(self.frame["x"].iloc[0]), float(self.frame["y"].iloc[0]))

    def _labels_in(self, rows: np.ndarray) -> list[str]:
        """The chooser's labels present among ``rows``, in the chooser's order."""
        if self.frame is None or len(rows) == 0:
            return []
        codes, names = self.label_codes()
        present = set(names[np.flatnonzero(np.bincount(codes[rows], minlength=len(names)))])
        return [label for label in self.param.selected_labels.objects if label in present]

    def _labels_from_selection(self, event) -> None:
        # a side effect, not a derivation: the chooser stays editable by the user afterwards
        if not self._selecting:
            with param.parameterized.batch_call_watchers(self):
                self._show_counts(self.frame, self._counted_rows())
                self.selected_labels = self._labels_in(self.selection)

    def _counted_rows(self, selection: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
        """The rows the chooser counts labels in: the selection (default: ``selection``), before
        the chooser narrows it; None (all rows) when nothing is selected or chosen labels add all
        their rows."""
        selection = self.selection if selection is None else selection
        return selection if len(selection) and self.only_selected else None

    @param.depends("frame", "selection", "selected_labels", "only_selected")
    def selected_rows(self) -> np.ndarray:
        """Row positions the table shows and label edits act on (computed once per state)."""
        key = (self.frame, self.selection, tuple(self.selected_labels), self.only_selected)
        return self.memo("selected rows").get(key, self._compute_selected_rows)

    def _compute_selected_rows(self) -> np.ndarray:
        if self.frame is None:
            return EMPTY.copy()
        if len(self.selection) == 0 and not self.selected_labels:
            return EMPTY.copy()
        if not self.selected_labels:
            return np.asarray(self.selection, dtype=np.int64)
        codes, names = self.label_codes()
        wanted = np.isin(names, list(self.selected_labels))[codes]
        if len(self.selection) == 0 or not self.only_selected:
            if not self.only_selected and len(self.selection):
                mask = np.zeros(len(codes), dtype=bool)
                mask[self.selection] = True
                return np.flatnonzero(mask | wanted).astype(np.int64)
            return np.flatnonzero(wanted).astype(np.int64)
        sel = np.asarray(self.selection, dtype=np.int64)
        return sel[wanted[sel]]

    @param.depends("frame", "selection", "selected_labels", "only_selected", "table_limit")
    def selected_frame(self) -> pd.DataFrame:
        """The table's rows: the first ``table_limit`` selected rows (index = row position),
        with a ``name`` column (the file name). Label edits and exports use all selected rows."""
        if self.frame is None:
            return pd.DataFrame()
        rows = self.selected_rows()[: self.table_limit]
        try:
            frame = self.rows_frame(rows)
            names = self.file_names(rows) if "path" in self.frame else base_names(frame["path"])
        except ResultsError as exc:  # a lazy folder's part deleted or rewritten since it was opened
            self.message = str(exc)
            return pd.DataFrame()
        return frame.assign(name=names)
