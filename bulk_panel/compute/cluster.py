"""Density clusters with HDBSCAN, with membership probabilities and GLOSH outlier scores.

>>> clusterer = Clusterer(min_cluster_size=10).fit(points)
>>> clusterer.labels_[:5], clusterer.probabilities_[:5], clusterer.outlier_scores_[:5]
>>> labels, probabilities, outlier_scores = clusterer.predict(new_points)  # no refit
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import param

from .schema import NOISE
from .upstream import condensed_tree


def auto_min_cluster_size(n: int) -> int:
    """The default smallest cluster for ``n`` images: grows like √n (5 at 100, 50 at 10k)."""
    return int(max(5, round(math.sqrt(n) / 2)))


class Clusterer(param.Parameterized):
    """HDBSCAN over a clustering space.

    Fitted attributes: ``labels_`` (cluster ids, -1 = noise), ``probabilities_`` (membership
    strength 0..1), ``outlier_scores_`` (GLOSH, 0..1, higher = more unusual),
    ``min_cluster_size_`` (the value used, after the automatic rule), ``points_`` (the
    points clustered, which :meth:`predict` compares new points with).
    """

    min_cluster_size = param.Integer(
        default=None,
        allow_None=True,
        bounds=(2, None),
        doc="smallest group called a cluster (empty = automatic: max(5, √n / 2))",
    )
    min_samples = param.Integer(
        default=3,
        allow_None=True,
        bounds=(1, None),
        doc="how conservative clustering is: larger → more noise (empty = min_cluster_size); "
        "3 measured best on Fashion-MNIST and openclipart",
    )
    selection_method = param.Selector(
        default="eom",
        objects=["eom", "leaf"],
        doc="eom: most persistent clusters; leaf: many small homogeneous clusters",
    )
    epsilon = param.Number(
        default=0.0,
        bounds=(0.0, None),
        doc="merge clusters closer than this distance (cluster_selection_epsilon)",
    )

    suggest_names = param.Boolean(
        default=True,
        doc="suggest a name per cluster from the model's ImageNet predictions (when it has that head), "
        "shown beside its label with how many members agree, to accept or not; labels stay 'cluster N'",
    )

    #: parameters that change the clusters (naming happens when results are assembled)
    result_params = ("min_cluster_size", "min_samples", "selection_method", "epsilon")

    def fit(self, points: np.ndarray, sample: Optional[np.ndarray] = None) -> "Clusterer":
        """Cluster ``points`` (n × d); with ``sample`` (row numbers), HDBSCAN clusters those
        rows and the others are assigned as :meth:`predict` assigns new points (a map laid out
        on a sample: ``Projector.laid_out_``)."""
        if sample is not None and len(sample) < len(points):
            return self._fit_sample(np.asarray(points, dtype=np.float32), np.asarray(sample))
        n = len(points)
        mcs = self.min_cluster_size or auto_min_cluster_size(n)
        self.min_cluster_size_ = mcs
        self.points_ = np.asarray(points, dtype=np.float32)
        self.birth_distances_ = np.zeros(0)
        if n < max(mcs, 2):
            self.labels_ = np.full(n, NOISE, np.int64)
            self.probabilities_ = np.zeros(n, np.float32)
            self.outlier_scores_ = np.zeros(n, np.float32)
            return self
        import hdbscan

        model = hdbscan.HDBSCAN(**self.hdbscan_options(n, self.points_.shape[1])).fit(np.asarray(points, dtype=np.float64))
        self.labels_ = model.labels_.astype(np.int64)
        self.birth_distances_ = birth_distances(condensed_tree(model), self.labels_)
        self.probabilities_ = np.nan_to_num(model.probabilities_).astype(np.float32)
        # GLOSH is undefined (NaN) for points whose neighbourhood is all duplicates
        self.outlier_scores_ = np.nan_to_num(model.outlier_scores_, nan=0.0).astype(np.float32)
        return self

    def _fit_sample(self, points: np.ndarray, sample: np.ndarray) -> "Clusterer":
        rest = np.ones(len(points), bool)
        rest[sample] = False
        self.fit(points[sample])
        added = self.predict(points[rest])
        for name, fitted, more in zip(("labels_", "probabilities_", "outlier_scores_"),
                                      (self.labels_, self.probabilities_, self.outlier_scores_), added):
            out = np.empty(len(points), fitted.dtype)
            out[sample], out[rest] = fitted, more
            setattr(self, name, out)
        self.points_ = points  # every point has its cluster now: predict compares with them all
        return self

    def hdbscan_options(self, n: int, dims: int) -> dict:
        """The keyword arguments of ``hdbscan.HDBSCAN`` for ``n`` points of ``dims`` dimensions."""
        mcs = self.min_cluster_size or auto_min_cluster_size(n)
        return dict(
            min_cluster_size=mcs,
            min_samples=min(self.min_samples, n - 1) if self.min_samples else None,
            cluster_selection_method=self.selection_method,
            cluster_selection_epsilon=float(self.epsilon),
            # a 2-D map's core distances take 0.8 s at 60k points in one thread; starting joblib's
            # workers costs a new process more than that (1.9 s). More dimensions, or more than
            # 100k points (not measured), keep joblib's parallel query
            core_dist_n_jobs=1 if dims <= 2 and n <= 100_000 else -1,
        )

    def restore(self, points, labels, probabilities, outlier_scores, min_cluster_size: int,
                birth_distances=None) -> "Clusterer":
        """Take back an earlier fit (its points and results, e.g. read from disk) for :meth:`predict`;
        without ``birth_distances`` (a saved map that holds none), :meth:`predict` uses the
        clusters' largest core distances instead."""
        self.birth_distances_ = None if birth_distances is None else np.asarray(birth_distances, dtype=float)
        self.points_ = np.asarray(points, dtype=np.float32)
        self.labels_ = np.asarray(labels, dtype=np.int64)
        self.probabilities_ = np.asarray(probabilities, dtype=np.float32)
        self.outlier_scores_ = np.asarray(outlier_scores, dtype=np.float32)
        self.min_cluster_size_ = int(min_cluster_size)
        return self

    def predict(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Assign new points to the fitted clusters without refitting (as HDBSCAN's
        ``approximate_predict`` does, from the fitted points alone).

        Each new point attaches to the fitted point among its ``min_samples`` nearest with the
        smallest reachability distance (max of the distance and that point's core distance),
        and takes that point's cluster, membership and outlier score — unless that distance is
        at least the cluster's birth distance (the mutual-reachability distance at which it
        split from its parent in HDBSCAN's condensed tree: the point would join only after the
        cluster stopped existing): then it is noise, with outlier score ``1 - core / distance``
        as GLOSH measures it. Returns ``(labels, probabilities, outlier_scores)``.

        Why not ``hdbscan.approximate_predict``: measured on a 2-D Gaussian mixture (10 blobs,
        60k points; 2 cores x86_64, ``python -m benchmarks.bench_predict``), the two agree on
        99.1 % of 6,000 held-out points (fit on the other 54,000); against a fit on all points
        the ARI is 0.986 here, 0.983 there. ``approximate_predict`` needs the fitted model with
        ``prediction_data=True`` (HDBSCAN's fit at 60k: 1.01-1.05 s with it, 0.89-0.90 s without;
        :meth:`fit`, with the birth distances, 1.02-1.06 s) and that model pickled with the saved map, 8.0 MiB
        at 60k against the 1.4 MiB the map keeps for its clusters, while new points are placed
        only into a saved map. It is faster per call (13 vs 108-110 ms for 1,000 points into
        60k: this builds its neighbour index each call), a tenth of a second once per rerun.
        """
        points = np.asarray(points, dtype=np.float32)
        m = len(points)
        if not m or len(self.points_) < 2:
            return np.full(m, NOISE, np.int64), np.zeros(m, np.float32), np.ones(m, np.float32)
        from sklearn.neighbors import NearestNeighbors

        k = max(1, min(self.min_samples or self.min_cluster_size_, len(self.points_) - 1))
        index = NearestNeighbors(n_neighbors=k + 1).fit(self.points_)
        core = index.kneighbors(self.points_, n_neighbors=k + 1)[0][:, -1]  # itself excluded
        dist, near = index.kneighbors(points, n_neighbors=k)
        reach = np.maximum(dist, core[near])
        best = reach.argmin(axis=1)
        rows = np.arange(m)
        nearest, reach = near[rows, best], reach[rows, best]
        labels = self.labels_[nearest]
        reach_limit = np.zeros(int(self.labels_.max()) + 2)  # per cluster (slot 0: noise)
        births = getattr(self, "birth_distances_", None)
        if births is not None and len(births) == len(reach_limit) - 1:
            reach_limit[1:] = births
            inside = (labels != NOISE) & (reach < reach_limit[labels + 1])
        else:  # no tree kept: the cluster's largest core distance, a stricter limit
            np.maximum.at(reach_limit, self.labels_ + 1, core)
            inside = (labels != NOISE) & (reach <= reach_limit[labels + 1])
        glosh = 1.0 - core[nearest] / np.maximum(reach, 1e-12)
        return (
            np.where(inside, labels, NOISE).astype(np.int64),
            np.where(inside, self.probabilities_[nearest], 0.0).astype(np.float32),
            np.clip(np.where(inside, self.outlier_scores_[nearest], np.maximum(self.outlier_scores_[nearest], glosh)), 0, 1).astype(np.float32),
        )


def birth_distances(tree: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per cluster label 0…k-1, the distance at which the cluster was born: 1 / λ of the
    condensed-tree edge into its node (``inf`` for the root). The node of a label is the
    lowest common ancestor of the nodes its points fall out of (node ids grow away from the
    root, so the largest id is replaced by its parent until one remains).

    ``tree``: HDBSCAN's condensed tree (parent, child, lambda_val, child_size), as
    :func:`upstream.condensed_tree` returns it.

    >>> birth_distances(condensed_tree(model), model.labels_)
    """
    n_labels = int(labels.max()) + 1 if len(labels) else 0
    out = np.full(n_labels, np.inf)
    if not n_labels:
        return out
    parent_of = dict(zip(tree["child"].tolist(), tree["parent"].tolist()))
    lambda_of = dict(zip(tree["child"].tolist(), tree["lambda_val"].tolist()))
    points = tree[tree["child_size"] == 1]
    fell_from = np.full(len(labels), -1, dtype=np.int64)
    fell_from[points["child"]] = points["parent"]
    # each label's distinct nodes from one sort of (label, node) pairs, not one pass per label
    kept = labels >= 0
    pairs = np.unique(np.stack([labels[kept], fell_from[kept]]), axis=1)
    pairs = pairs[:, pairs[1] >= 0]
    starts = np.flatnonzero(np.r_[True, pairs[0, 1:] != pairs[0, :-1]]) if pairs.shape[1] else np.zeros(0, int)
    for label, group in zip(pairs[0, starts].tolist(), np.split(pairs[1], starts[1:])):
        nodes = set(group.tolist())
        while len(nodes) > 1:
            top = max(nodes)
            nodes.discard(top)
            nodes.add(parent_of[top])
        birth = lambda_of.get(nodes.pop(), 0.0)
        out[label] = 1.0 / birth if birth > 0 else np.inf
    return out
