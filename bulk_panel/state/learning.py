"""Learning from the person's labels: predictions for every other image, suggestions to review.

>>> store.learn()                          # fit on the person's labels, predict the rest
>>> await store.learn_async()              # the same off the event loop (the dashboard's way)
>>> store.source_counts()                  # {'person': 120, 'prediction': 9880, 'cluster': 0}
>>> rows = store.suggestion_rows()         # predictions, least certain first
>>> store.accept_predictions(rows[:50])    # a page accepted: the person's labels now
>>> store.accept_confident(0.9)            # every prediction at least 90% sure
>>> store.correct(rows[3], "sandal")       # one corrected

A prediction is a label like any other (the map, the tables and the exports show it), with
``label_source`` 'prediction' and its ``confidence``. The learner trains on the person's labels
only, never on its own predictions or on cluster names; learning replaces every label that is
not the person's. Predictions are not an edit of their own: undo takes back the person's last
edit, and the predictions made after it with it.
"""
from __future__ import annotations

import asyncio
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import param

from ..compute.learn import LabelLearner, Reduced, least_certain
from ..compute.schema import LABEL_SOURCES
from .labels import Labels, clean_label

__all__ = ["Learning"]

PERSON, PREDICTION = LABEL_SOURCES.index("person"), LABEL_SOURCES.index("prediction")


class Learning(Labels):
    """The learning loop of one session (a part of :class:`ResultsStore`)."""

    learning = param.Boolean(default=False, doc="Predict every label the person has not given, after each of their edits.")
    learn_method = param.Selector(default="logistic", objects=["logistic", "knn"], doc="How predictions are learnt.")

    # ---------------------------------------------------------------------------------
    # what the learner reads
    # ---------------------------------------------------------------------------------
    def can_learn(self) -> bool:
        """Whether these results have embeddings to learn from."""
        results = self.results
        if results is None or self.frame is None or not len(self.frame):
            return False
        try:
            embeddings = results.embeddings
        except Exception:  # noqa: BLE001 - a file without vectors, a share bundle
            return False
        return embeddings is not None and len(embeddings) == len(self.frame)

    def _space(self) -> np.ndarray:
        """The learner's vectors for these results (reduced once per results)."""
        return self._of_results("learner space").get((), lambda: Reduced.of(self.results.embeddings).vectors)

    def source_counts(self) -> dict:
        """How many labels a person gave, how many are predictions, how many are still a
        cluster's (or noise)."""
        counts = np.bincount(self.frame["label_source"].cat.codes.to_numpy(), minlength=len(LABEL_SOURCES))
        return dict(zip(LABEL_SOURCES, counts.tolist()))

    # ---------------------------------------------------------------------------------
    # learning
    # ---------------------------------------------------------------------------------
    def _predict(self, frame: pd.DataFrame) -> Optional[dict]:
        """The label columns with every non-person row predicted; None without person labels or
        without anyone left to predict. Runs in a worker thread: reads only ``frame``."""
        codes = frame["label_source"].cat.codes.to_numpy()
        person = codes == PERSON
        if not person.any() or person.all():
            return None
        space = self._space()
        learner = LabelLearner(method=self.learn_method).fit(space[person], frame["label"].to_numpy(dtype=object)[person])
        predicted, confidence = learner.predict(space[~person])
        labels = frame["label"].to_numpy(dtype=object).copy()
        labels[~person] = predicted
        codes = np.where(person, PERSON, PREDICTION).astype(np.int8)
        full = frame["confidence"].to_numpy(dtype=np.float32).copy()
        full[~person] = confidence
        return {"label": labels, "label_source": pd.Categorical.from_codes(codes, categories=LABEL_SOURCES),
                "confidence": full}

    def _show_predictions(self, columns: Optional[dict]) -> int:
        if columns is None:
            self.message = "Label some images first: predictions learn from the labels a person gave."
            return 0
        n = int((columns["label_source"].codes == PREDICTION).sum())
        self._apply_labels(columns["label"], f"{n:,} labels predicted from yours.", record=False, columns=columns)
        return n

    def _cannot_learn(self) -> bool:
        if self.can_learn():
            return False
        self.message = "These results have no embeddings to learn from."
        return True

    def learn(self) -> int:
        """Fit on the person's labels, predict every other row; returns how many were predicted."""
        return 0 if self._cannot_learn() else self._show_predictions(self._predict(self.frame))

    async def learn_async(self) -> int:
        """:meth:`learn` with the fitting in a worker thread; predictions made from labels that
        changed meanwhile are dropped (the next edit learns again). Returns rows predicted."""
        if self._cannot_learn():
            return 0
        frame = self.frame
        columns = await asyncio.to_thread(self._predict, frame)
        if self.frame is not frame:
            return 0
        return self._show_predictions(columns)

    # ---------------------------------------------------------------------------------
    # suggestions: the person reviews predictions
    # ---------------------------------------------------------------------------------
    def suggestion_rows(self) -> np.ndarray:
        """Every predicted row, the least certain first (ties in row order)."""
        codes = self.frame["label_source"].cat.codes.to_numpy()
        return least_certain(self.frame["confidence"].to_numpy(dtype=np.float32), np.flatnonzero(codes == PREDICTION))

    def accept_predictions(self, rows: Sequence[int]) -> int:
        """The predicted labels of ``rows`` become the person's (one undoable edit); rows that
        are not predictions are left as they are. Returns how many were accepted."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[self.frame["label_source"].cat.codes.to_numpy()[rows] == PREDICTION]
        if not len(rows):
            self.message = "No predictions to accept."
            return 0
        self._apply_labels(self.frame["label"].to_numpy(dtype=object), f"{len(rows):,} predictions accepted.",
                           person=rows)
        return len(rows)

    def accept_confident(self, threshold: float) -> int:
        """Accept every prediction whose confidence is at least ``threshold`` (0..1)."""
        confidence = self.frame["confidence"].to_numpy(dtype=np.float32)
        rows = self.suggestion_rows()
        return self.accept_predictions(rows[confidence[rows] >= threshold])

    def correct(self, row: int, label: str) -> None:
        """Give row ``row`` the label ``label`` as the person's (one undoable edit)."""
        label = clean_label(label)
        labels = self.frame["label"].to_numpy(dtype=object).copy()
        labels[row] = label
        self._apply_labels(labels, f"{self.values('path', [row])[0]} labelled {label!r}.", person=[row])
