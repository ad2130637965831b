"""Label edits with undo and redo, suggested names, the per-label summary, and saving the labels back.

>>> store.relabel("cats"); store.undo(); store.redo()
>>> store.rename_label("cluster 3", "dogs"); store.merge_labels(["a", "b"], into="ab")
>>> store.suggestions()                  # 'cluster 3' → 'lighthouse', agreement 0.41 of 58 members
>>> store.accept_suggestion("cluster 3"); store.accept_suggestions(min_agreement=0.5)
>>> store.label_summary()                # one row per label: colour, count, representative …
>>> store.save_labels()                  # back into the results file, atomically
"""
from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import param

from ..compute.names import read_suggestions
from ..compute.schema import LABEL_SOURCES, cluster_label
from .rows import with_label_sources
from .selection import Selection

__all__ = ["LABEL_COLUMNS", "Labels", "UNDO_LIMIT", "clean_label"]

UNDO_LIMIT = 50
#: what a label edit changes, and undo restores
LABEL_COLUMNS = ("label", "label_source", "confidence")


class Labels(Selection):
    """The label edits of one session (a part of :class:`ResultsStore`): each edit replaces the
    frame and can be undone; :meth:`save_labels` writes them into the results file."""

    can_undo = param.Boolean(default=False, constant=True, doc="Whether a label edit can be undone.")
    can_redo = param.Boolean(default=False, constant=True, doc="Whether an undone label edit can be redone.")
    dirty = param.Boolean(default=False, constant=True, doc="Labels changed since the last save.")

    _undo: Sequence[dict] = ()  # the label columns before each edit, oldest first
    _redo: Sequence[dict] = ()
    person_edits = param.Integer(default=0, constant=True,
                                 doc="Label edits by the person so far (what the learner retrains on).")

    # ---------------------------------------------------------------------------------
    # label edits, undo, redo
    # ---------------------------------------------------------------------------------
    def _label_columns(self) -> dict:
        """The label, its source and confidence as they are now (the frame is never changed in
        place, so these are shared, not copied)."""
        return {name: self.frame[name].array for name in LABEL_COLUMNS}

    def _apply_labels(self, labels: np.ndarray, message: str, *, record: bool = True, person=None,
                      columns: Optional[dict] = None) -> None:
        """Set the labels (one undoable edit unless ``record`` is False). The rows a person
        labelled get the source 'person' and confidence 1: ``person`` (positions or a mask),
        or by default every row whose label changed. ``columns``: the label columns as they are
        to be (undo, redo, predictions), taken as given."""
        if record:
            self._undo = [*self._undo, self._label_columns()][-UNDO_LIMIT:]
            self._redo = []
        edit = columns is None
        if edit:
            changed = labels != self.frame["label"].to_numpy(dtype=object) if person is None else person
            codes = self.frame["label_source"].cat.codes.to_numpy().copy()
            confidence = self.frame["confidence"].to_numpy(dtype=np.float32).copy()
            codes[changed], confidence[changed] = LABEL_SOURCES.index("person"), 1.0
            columns = {"label": labels, "label_source": pd.Categorical.from_codes(codes, categories=LABEL_SOURCES),
                       "confidence": confidence}
        self._set_frame(self.frame.assign(**columns))
        with param.edit_constant(self):
            self.can_undo, self.can_redo, self.dirty = bool(self._undo), bool(self._redo), True
        self.message = message
        # the selection keeps its rows; its labels are read again
        self._labels_from_selection(None)
        if edit:  # last: whoever learns from the person's edits reads them all
            with param.edit_constant(self):
                self.person_edits += 1

    def relabel(self, new_label: str) -> int:
        """Give the selected rows (``selected_rows()``) the label ``new_label``; returns how many."""
        new_label = clean_label(new_label)
        rows = self.selected_rows()
        if len(rows) == 0:
            self.message = "Select some points first."
            return 0
        labels = self.frame["label"].to_numpy(dtype=object).copy()
        labels[rows] = new_label
        from_chooser = len(self.selection) == 0
        self._apply_labels(labels, f"{len(rows)} rows labelled {new_label!r}.", person=rows)
        if from_chooser:  # rows chosen by label only: they stay chosen under their new label
            self.selection = rows
        return len(rows)

    def rename_label(self, old: str, new: str) -> int:
        """Rename label ``old`` to ``new`` everywhere (merging if ``new`` exists); returns rows changed."""
        new = clean_label(new)
        labels = self.frame["label"].to_numpy(dtype=object).copy()
        mask = labels == old
        if not mask.any() or old == new:
            self.message = f"No label {old!r} to rename." if not mask.any() else "Same name."
            return 0
        labels[mask] = new
        if old in self.colors and new not in self.colors:
            self.colors = {**self.colors, new: self.colors[old]}
        self._apply_labels(labels, f"{old!r} renamed to {new!r} ({int(mask.sum())} rows).")
        return int(mask.sum())

    def merge_labels(self, labels: Sequence[str], into: str) -> int:
        """Give every row labelled one of ``labels`` the label ``into``; returns rows changed."""
        into = clean_label(into)
        current = self.frame["label"].to_numpy(dtype=object).copy()
        mask = np.isin(current, [label for label in labels if label != into])
        if not mask.any():
            self.message = "Nothing to merge."
            return 0
        current[mask] = into
        self._apply_labels(current, f"{len(labels)} labels merged into {into!r} ({int(mask.sum())} rows).")
        return int(mask.sum())

    # ---------------------------------------------------------------------------------
    # suggested names
    # ---------------------------------------------------------------------------------
    @param.depends("frame", "results")
    def suggestions(self) -> pd.DataFrame:
        """The suggested names still to accept: one row per label that is still a cluster's
        neutral label ('cluster 3') and has a suggestion in the results' meta, in label order.

        Columns: ``label`` (also the index), ``cluster``, ``suggestion``, ``agreement`` (the
        share, 0..1, of the cluster's members whose own top-1 ImageNet class is in the
        suggestion; NaN when unknown, as in older files), ``size`` (the members it was measured
        on; NaN when unknown). A renamed cluster has none; the static page reads the same meta.
        """
        return self.memo("suggestions").get((self.results, self.frame), self._suggestion_table).copy()

    def _suggestion_table(self) -> pd.DataFrame:
        columns = ["label", "cluster", "suggestion", "agreement", "size"]
        known = read_suggestions(self.results.meta if self.results is not None else None)
        present = set(self.label_codes()[1]) if known and self.frame is not None and len(self.frame) else set()
        rows = [(cluster_label(c), c, s["name"], s["agreement"], s["size"]) for c, s in sorted(known.items())
                if cluster_label(c) in present]  # cluster order is the labels' order ('cluster N' by N)
        table = pd.DataFrame(rows, columns=columns).astype({"cluster": int, "agreement": float, "size": float})
        return table.set_index("label", drop=False).rename_axis(None)

    def accept_suggestion(self, label: str) -> int:
        """Rename the cluster label ``label`` ('cluster 3') to its suggested name (one undoable
        edit); returns the rows changed. When that name is already a label, the two merge, and
        the message says so. No suggestion for ``label``: nothing changes."""
        table = self.suggestions()
        if label not in table.index:
            self.message = f"No suggestion for {label!r}."
            return 0
        name = table.at[label, "suggestion"]
        merged = name in set(self.label_codes()[1])
        changed = self.rename_label(label, name)
        if changed:
            self.message = (f"{label!r} merged into the existing label {name!r} ({changed} rows)." if merged
                            else f"Suggestion accepted: {label!r} is now {name!r} ({changed} rows).")
        return changed

    def accept_suggestions(self, min_agreement: float) -> int:
        """Accept every suggestion whose agreement is at least ``min_agreement`` (0..1; 0 accepts
        them all, those of unknown agreement too) in one undoable edit; returns how many labels
        were renamed. A bulk acceptance never merges: a suggestion whose name is already a label
        (or another accepted one's) is skipped and counted in the message; accept it on its own
        to merge."""
        table = self.suggestions()
        if min_agreement > 0:
            table = table[table["agreement"] >= min_agreement]
        present = set(self.label_codes()[1])
        take = table[~table["suggestion"].isin(present) & ~table["suggestion"].duplicated()]
        skipped = len(table) - len(take)
        note = f"; {skipped} skipped: the name is already a label" if skipped else ""
        rule = f"agreement ≥ {100 * min_agreement:.0f}%" if min_agreement > 0 else "all"
        if take.empty:
            self.message = f"No suggestions to accept ({rule}){note}."
            return 0
        mapping = dict(zip(take["label"], take["suggestion"]))
        codes, names = self.label_codes()
        renamed = np.array([mapping.get(name, name) for name in names], dtype=object)
        labels = self.frame["label"].to_numpy(dtype=object).copy()
        known = codes >= 0
        labels[known] = renamed[codes[known]]
        colors = dict(self.colors)
        for old, new in mapping.items():
            if old in colors and new not in colors:
                colors[new] = colors[old]
        self.colors = colors
        many = "s" if len(mapping) > 1 else ""
        self._apply_labels(labels, f"{len(mapping)} suggestion{many} accepted ({rule}){note}.")
        return len(mapping)

    def undo(self) -> bool:
        """Undo the last label edit; False when there is none."""
        return self._travel("_undo", "_redo", "Undone.")

    def redo(self) -> bool:
        """Redo the last undone label edit; False when there is none."""
        return self._travel("_redo", "_undo", "Redone.")

    def _travel(self, source: str, target: str, message: str) -> bool:
        """Move one step between the undo and redo stacks, applying the labels it holds."""
        stack = getattr(self, source)
        if not stack:
            return False
        setattr(self, target, [*getattr(self, target), self._label_columns()])
        *rest, columns = stack
        setattr(self, source, rest)
        self._apply_labels(columns["label"], message, record=False, columns=columns)
        return True

    def reset(self) -> None:
        """Back to the labels of the results as loaded (or last saved), nothing selected (undoable)."""
        self.clear_selection()
        if self.results is not None and self.frame is not None:
            original = with_label_sources(self.results.frame)
            columns = {name: original[name].array for name in LABEL_COLUMNS}
            if any(not pd.Series(columns[name]).equals(pd.Series(self.frame[name].array)) for name in LABEL_COLUMNS):
                self._apply_labels(columns["label"], "Labels reset.", columns=columns)
                with param.edit_constant(self):
                    self.dirty = False

    # ---------------------------------------------------------------------------------
    # saving
    # ---------------------------------------------------------------------------------
    def save_labels(self, path: Optional[str | Path] = None) -> Path:
        """Write the current labels into the results file (atomically); returns its path."""
        target = self._save_target(path)
        frame = self.frame
        saved = self._write_labels(frame, target)
        self._saved(frame, saved)
        return saved

    async def save_labels_async(self, path: Optional[str | Path] = None) -> Path:
        """:meth:`save_labels` with the file written in a worker thread (the event loop stays free).

        Parameters change only on the calling (event-loop) thread; labels edited while the file
        is written stay marked unsaved.

        >>> await store.save_labels_async()
        """
        target = self._save_target(path)
        frame = self.frame
        self.message = f"Saving labels to {target.name}…"
        saved = await asyncio.to_thread(self._write_labels, frame, target)
        self._saved(frame, saved)
        return saved

    def _save_target(self, path: Optional[str | Path]) -> Path:
        if self.results is None:
            raise ValueError("no results to save")
        target = Path(path) if path is not None else self.results.path
        if target is None:
            raise ValueError("these results have no file yet: give a path")
        return Path(target)

    def _write_labels(self, frame: pd.DataFrame, target: Path) -> Path:
        results = copy.copy(self.results)  # the session's Results changes only once written
        results.frame = frame.copy()
        saved = results.save(target)
        self.results.frame, self.results.path = results.frame, saved
        return saved

    def _saved(self, frame: pd.DataFrame, saved: Path) -> None:
        with param.edit_constant(self):
            self.dirty = self.frame is not frame
        self.message = f"Labels saved to {saved.name}."

    # ---------------------------------------------------------------------------------
    # the per-label summary
    # ---------------------------------------------------------------------------------
    def _representativeness(self) -> np.ndarray:
        """Per row, smaller = more representative of its label: highest membership probability
        first, then lowest outlier score (one float key, so one sort or groupby ranks a label)."""
        frame = self.frame
        return (1.0 - frame["probability"].to_numpy(dtype=float)) + 1e-7 * frame["outlier_score"].to_numpy(dtype=float)

    @param.depends("frame", "colors")
    def label_summary(self) -> pd.DataFrame:
        """One row per label: label, colour, count, share, mean membership probability, a
        representative row (the most probable member) and its content hash; noise last."""
        columns = ["label", "color", "count", "share", "mean_probability", "representative", "content_hash"]
        if self.frame is None or len(self.frame) == 0:
            return pd.DataFrame(columns=columns)
        frame = self.frame
        codes, names = self.label_codes()  # factorised once per frame: no string groupby at 1M rows
        counts = np.bincount(codes, minlength=len(names))
        probability = np.bincount(codes, weights=frame["probability"].to_numpy(dtype=float), minlength=len(names))
        best = _first_min_per_code(self._representativeness(), codes, len(names))
        hashes = self.values("content_hash", best) if "content_hash" in self.columns else np.full(len(names), "")
        summary = pd.DataFrame({
            "label": names, "color": [self.colors.get(label, "#000000") for label in names], "count": counts,
            "share": counts / len(frame), "mean_probability": probability / counts, "representative": best,
            "content_hash": hashes,
        }).set_index("label", drop=False)
        return summary.loc[self.sorted_labels(frame), columns].reset_index(drop=True)


def _first_min_per_code(values: np.ndarray, codes: np.ndarray, n_codes: int) -> np.ndarray:
    """Per code, the first row position holding that code's smallest value (NaN values ignored;
    a code whose values are all NaN: its first row; -1: no row has the code). One pass over the
    rows, no sort and no groupby (~3 ms at 1M rows, 20× faster than groupby().idxmin()).

    >>> _first_min_per_code(np.array([3., 1., 2., 1.]), np.array([0, 0, 1, 0]), 2)
    array([1, 2])
    """
    low = np.full(n_codes, np.inf)
    np.fmin.at(low, codes, values)
    best = np.full(n_codes, -1, dtype=np.int64)

    def take_first(rows: np.ndarray) -> None:
        present, first = np.unique(codes[rows], return_index=True)
        best[present] = rows[first]

    take_first(np.flatnonzero(values == low[codes]))
    if (best < 0).any():  # codes whose values are all NaN (rare): their first row
        take_first(np.flatnonzero(np.isin(codes, np.flatnonzero(best < 0))))
    return best


def clean_label(text: str) -> str:
    """A label as stored: whitespace runs as one space, at most 200 characters; empty → ValueError."""
    label = " ".join(str(text).split())
    if not label:
        raise ValueError("a label cannot be empty")
    return label[:200]
