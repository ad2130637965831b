"""Flatten embeddings with UMAP: a 2-D map for display and an n-D space for clustering.

>>> projector = Projector(cluster_dims=10).fit(embeddings)
>>> projector.xy_.shape, projector.cluster_space_.shape
((n, 2), (n, 10))

Both UMAP runs share one k-nearest-neighbour graph (computed once). umap-learn and numba
are imported lazily.
"""
from __future__ import annotations

import warnings

import numpy as np
import param

from .cache import l2_normalise

SMALL_DATA = 4096  # below this umap-learn computes exact distances itself


def _fallback_coords(x: np.ndarray, dims: int) -> np.ndarray:
    """PCA coordinates padded with zeros, for sets too small for UMAP."""
    out = np.zeros((len(x), dims), np.float32)
    if len(x) > 1:
        centred = x - x.mean(axis=0)
        u, s, _ = np.linalg.svd(centred, full_matrices=False)
        k = min(dims, u.shape[1])
        out[:, :k] = u[:, :k] * s[:k]
    return out


class Projector(param.Parameterized):
    """UMAP projections of L2-normalised embeddings.

    Fitted attributes: ``xy_`` (n×2 map coordinates), ``cluster_space_`` (n×cluster_dims,
    the same array as ``xy_`` when cluster_dims is 2), ``reducer_`` (the 2-D UMAP, for
    placing new points with ``transform``).
    """

    n_neighbors = param.Integer(
        default=15, bounds=(2, 200), doc="UMAP neighbours: larger favours global structure"
    )
    min_dist = param.Number(
        default=0.1, bounds=(0.0, 1.0), doc="UMAP minimum distance between points on the map"
    )
    cluster_dims = param.Integer(
        default=10,
        bounds=(2, 100),
        doc="dimensions of the UMAP space that HDBSCAN clusters in (2 = cluster the map itself)",
    )
    metric = param.Selector(
        default="cosine",
        objects=["cosine", "euclidean", "correlation"],
        doc="distance between embeddings",
    )
    pca_dims = param.Integer(
        default=64,
        bounds=(0, 4096),
        doc="reduce embeddings with PCA to this many dimensions before UMAP (0 = off)",
    )
    seed = param.Integer(
        default=42, allow_None=True, doc="random seed: same seed, same map (None = faster, not reproducible)"
    )

    def _reduce(self, x: np.ndarray) -> np.ndarray:
        if self.pca_dims and x.shape[1] > self.pca_dims and len(x) > self.pca_dims:
            from sklearn.decomposition import PCA

            x = PCA(n_components=self.pca_dims, random_state=self.seed).fit_transform(x)
        return x.astype(np.float32)

    def fit(self, embeddings: np.ndarray) -> "Projector":
        """Compute the 2-D map and the clustering space of ``embeddings``."""
        x = self._reduce(l2_normalise(embeddings))
        n = len(x)
        k = min(self.n_neighbors, n - 1)
        self.reducer_ = None
        if k < 2 or n <= self.cluster_dims + 2:
            self.xy_ = _fallback_coords(x, 2)
            self.cluster_space_ = _fallback_coords(x, self.cluster_dims)
            return self

        from umap import UMAP
        from umap.umap_ import nearest_neighbors

        knn: tuple = (None, None, None)
        if n >= SMALL_DATA:
            knn = nearest_neighbors(
                x, k, self.metric, {}, False, np.random.RandomState(self.seed), n_jobs=-1
            )

        def umap(dims: int, min_dist: float) -> "UMAP":
            return UMAP(
                n_components=dims,
                n_neighbors=k,
                min_dist=min_dist,
                metric=self.metric,
                random_state=self.seed,
                precomputed_knn=knn,
                init="spectral" if n > 4 * dims else "random",
            )

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
            reducer = umap(2, self.min_dist)
            self.xy_ = reducer.fit_transform(x).astype(np.float32)
            self.reducer_ = reducer
            if self.cluster_dims == 2:
                self.cluster_space_ = self.xy_
            else:
                # tight packing (min_dist 0) suits density-based clustering
                self.cluster_space_ = umap(self.cluster_dims, 0.0).fit_transform(x).astype(np.float32)
        return self
