"""The per-session state of the dashboard: one :class:`ResultsStore` per browser session.

It owns the results frame, the selection and the labels, and derives what the views show.
No Panel import: the views read it and write the user's intent back into it. Each concern is a
module of its own, and the store is all of them together:

- :mod:`.rows`: the results, the frame, label codes, file names, colours;
- :mod:`.selection`: box, lasso, label clicks, focus, hover, the table's rows;
- :mod:`.labels`: label edits with undo and redo (each label's source and confidence too), the
  label summary, saving;
- :mod:`.learning`: predictions learnt from the person's labels, suggestions to review;
- :mod:`.tools`: more like this, outliers, duplicates, the cluster gallery, splitting;
- :mod:`.exports`: CSV, Parquet and zip files of the rows.

>>> store = ResultsStore.from_path("results.parquet")
>>> store.select_box(-1, -1, 1, 1)       # rows whose (x, y) lie in the box
>>> store.selected_frame                 # the table's rows
>>> store.values("path", store.selected_rows())   # in memory, or read from a folder's parts
>>> store.relabel("cats"); store.undo(); store.redo()
>>> store.save_labels()                  # back into the results file, atomically
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import param

from ..compute.results import Results, build_frame, load_results
from .exports import Exports
from .learning import Learning
from .memo import shared_memo
from .rows import with_label_sources
from .selection import EMPTY
from .tools import ClusterTools

__all__ = ["ResultsStore"]


class ResultsStore(Exports, ClusterTools, Learning):
    """The results frame, the selection and the labels of one session, with undo and redo.

    ``frame`` is replaced (never changed in place) on every edit, so anything that depends on
    it updates. ``selection`` holds row positions into ``frame``; ``selected_labels`` narrows
    it (and is refilled with the labels a new selection contains, as in the seed app).

    >>> store = ResultsStore(results=results)
    >>> store.selection = np.array([0, 1, 2])
    >>> store.relabel("cats")
    """

    def __init__(self, results: Optional[Results] = None, **params):
        # a shallow copy: saving labels replaces this session's frame, never a shared one's
        super().__init__(results=copy.copy(results), **params)
        self._source = results
        if results is not None and self.frame is None:
            self._set_frame(self._loaded_frame(results))
        elif self.frame is None:  # nothing loaded yet (a pipeline run will load): no rows
            self._set_frame(build_frame([], [], np.zeros((0, 2)), np.zeros((0, 2)), [], [], [], []))

    def load(self, results: Results) -> None:
        """Show ``results`` instead of the current ones (e.g. after a pipeline run).

        Frame, selection, label choice, undo/redo history, focus and hover are replaced; labels
        that exist in both keep their colours.

        >>> store.load(load_results("new.parquet"))
        """
        frame = self._loaded_frame(results)
        self._source, results = results, copy.copy(results)
        present = set(self.sorted_labels(frame))
        self._undo, self._redo = [], []
        with param.parameterized.batch_call_watchers(self):
            self.focus = None
            self.hover = None
            self.similar, self.similar_scores = EMPTY.copy(), np.empty(0)
            self.selected_labels = []
            self.selection = EMPTY.copy()
            self.colors = {label: color for label, color in self.colors.items() if label in present}
            self.results = results
            self._set_frame(frame)
            with param.edit_constant(self):
                self.can_undo = self.can_redo = self.dirty = False
            self.message = f"{len(frame):,} images loaded."

    @staticmethod
    def _loaded_frame(results: Results) -> pd.DataFrame:
        """The frame a session starts from: ``results.frame`` indexed 0..n-1, with label
        sources; one object per results and process, shared by the sessions until they change a
        label (so are the lookups made from it: label codes, the map's colours per row)."""
        return shared_memo(results, "frame").get((), lambda: with_label_sources(results.frame.reset_index(drop=True)))

    @classmethod
    def from_path(cls, path: str | Path, **params) -> "ResultsStore":
        """A store on the results file (or folder) at ``path`` (raises ResultsError naming the
        file). A folder of parts keeps its text columns on disk (``load_results(lazy=True)``)."""
        return cls(results=load_results(path, lazy=True), **params)
