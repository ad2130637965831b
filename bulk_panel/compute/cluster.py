"""Density clusters with HDBSCAN, with membership probabilities and GLOSH outlier scores.

>>> clusterer = Clusterer(min_cluster_size=10).fit(points)
>>> clusterer.labels_[:5], clusterer.probabilities_[:5], clusterer.outlier_scores_[:5]
"""
from __future__ import annotations

import math

import numpy as np
import param

from .schema import NOISE, cluster_label


def auto_min_cluster_size(n: int) -> int:
    """The default smallest cluster for ``n`` images: grows like √n (5 at 100, 50 at 10k)."""
    return int(max(5, round(math.sqrt(n) / 2)))


class Clusterer(param.Parameterized):
    """HDBSCAN over a clustering space.

    Fitted attributes: ``labels_`` (cluster ids, -1 = noise), ``probabilities_`` (membership
    strength 0..1), ``outlier_scores_`` (GLOSH, 0..1, higher = more unusual),
    ``min_cluster_size_`` (the value used, after the automatic rule).
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
        doc="name clusters after the model's ImageNet predictions when it has that head (else 'cluster N')",
    )

    #: parameters that change the clusters (naming happens when results are assembled)
    result_params = ("min_cluster_size", "min_samples", "selection_method", "epsilon")

    def fit(self, points: np.ndarray) -> "Clusterer":
        """Cluster ``points`` (n × d)."""
        n = len(points)
        mcs = self.min_cluster_size or auto_min_cluster_size(n)
        self.min_cluster_size_ = mcs
        if n < max(mcs, 2):
            self.labels_ = np.full(n, NOISE, np.int64)
            self.probabilities_ = np.zeros(n, np.float32)
            self.outlier_scores_ = np.zeros(n, np.float32)
            return self
        import hdbscan

        model = hdbscan.HDBSCAN(
            min_cluster_size=mcs,
            min_samples=min(self.min_samples, n - 1) if self.min_samples else None,
            cluster_selection_method=self.selection_method,
            cluster_selection_epsilon=float(self.epsilon),
            core_dist_n_jobs=-1,
        ).fit(np.asarray(points, dtype=np.float64))
        self.labels_ = model.labels_.astype(np.int64)
        self.probabilities_ = np.nan_to_num(model.probabilities_).astype(np.float32)
        # GLOSH is undefined (NaN) for points whose neighbourhood is all duplicates
        self.outlier_scores_ = np.nan_to_num(model.outlier_scores_, nan=0.0).astype(np.float32)
        return self

    def label_names(self) -> list[str]:
        """Readable initial labels: 'cluster 3', 'noise'."""
        return [cluster_label(c) for c in self.labels_]
