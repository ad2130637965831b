"""Learning labels from the ones a person gave: every other image gets a predicted label and a
confidence. No Panel; the store runs it off the event loop after each labelling action.

>>> learner = LabelLearner().fit(embeddings[person_rows], person_labels)
>>> labels, confidence = learner.predict(embeddings)        # every row; confidence in 0..1
>>> order = least_certain(confidence, candidates)            # what to show the person first

Two methods, on L2-normalised embeddings reduced once per results to ``dims`` principal
components (the reduction is fitted on all rows, labels play no part in it):

- ``"logistic"``: multinomial logistic regression; the confidence is the top class's
  probability. The default (chosen by ``bulk-panel evaluate --labelling``: docs/labelling.md).
- ``"knn"``: a vote of the ``k`` nearest person-labelled images (cosine); the confidence is the
  winning label's share of the votes.

With one label only, everything is predicted as it, with a confidence that falls with the cosine
distance to that label's images (a person who named one group has not yet said what else exists).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

__all__ = ["LabelLearner", "METHODS", "Reduced", "least_certain"]

METHODS = ("logistic", "knn")


@dataclass
class Reduced:
    """Embeddings as the learner reads them: L2-normalised, projected on their first ``dims``
    principal components (once per results; 1.5 s at 10k and 6-7 s at 100k × 1,280 on two busy
    cores: docs/labelling.md), then normalised again.

    >>> space = Reduced.of(results.embeddings)
    >>> space.vectors.shape   # (n, 64)
    """

    vectors: np.ndarray

    @classmethod
    def of(cls, embeddings: np.ndarray, dims: int = 64, seed: int = 0, sample: int = 20_000) -> "Reduced":
        x = np.asarray(embeddings, dtype=np.float32)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        if x.shape[1] > dims and len(x) > dims:
            rng = np.random.default_rng(seed)
            fit_on = x[rng.choice(len(x), size=min(sample, len(x)), replace=False)]
            mean = fit_on.mean(axis=0)
            # the top principal axes from the sample's covariance (dims × dims work, not n × d)
            _, vectors = np.linalg.eigh(np.cov(fit_on - mean, rowvar=False).astype(np.float64))
            axes = vectors[:, ::-1][:, :dims].astype(np.float32)
            x = (x - mean) @ axes
            x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return cls(np.ascontiguousarray(x, dtype=np.float32))


@dataclass
class LabelLearner:
    """Learns from person-given labels only; predicts every row with a confidence (0..1).

    >>> learner = LabelLearner(method="knn", k=10).fit(space.vectors[rows], labels)
    >>> predicted, confidence = learner.predict(space.vectors)
    """

    method: str = "logistic"
    k: int = 10
    C: float = 1.0
    classes_: np.ndarray = field(default=None, init=False, repr=False)
    _model: object = field(default=None, init=False, repr=False)
    _x: Optional[np.ndarray] = field(default=None, init=False, repr=False)
    _y: Optional[np.ndarray] = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown learning method {self.method!r}: one of {', '.join(METHODS)}")

    def fit(self, x: np.ndarray, labels: Sequence[str]) -> "LabelLearner":
        labels = np.asarray(labels, dtype=object)
        if len(labels) == 0:
            raise ValueError("nothing to learn from: no image has a label a person gave")
        self.classes_, y = np.unique(labels.astype(str), return_inverse=True)
        self._x, self._y = np.asarray(x, dtype=np.float32), y
        if self.method == "logistic" and len(self.classes_) > 1:
            from sklearn.linear_model import LogisticRegression

            self._model = LogisticRegression(C=self.C, max_iter=300).fit(self._x, y)
        return self

    def predict(self, x: np.ndarray, batch: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
        """(labels, confidence) for the rows of ``x``, in batches (bounded memory at 1M rows)."""
        if self.classes_ is None:
            raise ValueError("fit the learner first")
        x = np.asarray(x, dtype=np.float32)
        codes = np.empty(len(x), dtype=np.int64)
        confidence = np.empty(len(x), dtype=np.float32)
        for start in range(0, len(x), batch):
            part = slice(start, start + batch)
            codes[part], confidence[part] = self._predict_codes(x[part])
        return self.classes_[codes], confidence

    def _predict_codes(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self.classes_) == 1:
            # one known label: how close to it (cosine to the nearest of its images, 0..1)
            nearest = (x @ self._x[: 2_000].T).max(axis=1) if len(x) else np.empty(0, np.float32)
            return np.zeros(len(x), np.int64), np.clip(nearest, 0, 1)
        if self.method == "logistic":
            proba = self._model.predict_proba(x)
            return proba.argmax(axis=1), proba.max(axis=1)
        return self._vote(x)

    def _vote(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = min(self.k, len(self._x))
        similarity = x @ self._x.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        votes = np.zeros((len(x), len(self.classes_)), dtype=np.float32)
        weights = np.maximum(np.take_along_axis(similarity, nearest, axis=1), 0) + 1e-6
        np.add.at(votes, (np.repeat(np.arange(len(x)), k), self._y[nearest].ravel()), weights.ravel())
        share = votes / votes.sum(axis=1, keepdims=True)
        return share.argmax(axis=1), share.max(axis=1)


def least_certain(confidence: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """``candidates`` (row positions) ordered from the least to the most certain prediction;
    ties keep row order."""
    candidates = np.asarray(candidates)
    return candidates[np.argsort(confidence[candidates], kind="stable")]
