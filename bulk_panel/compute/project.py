"""Flatten embeddings with UMAP: a 2-D map for display, which HDBSCAN also clusters.

>>> projector = Projector().fit(embeddings)
>>> projector.xy_.shape, projector.cluster_space_ is projector.xy_
((n, 2), True)
>>> Projector(cluster_dims=10).fit(embeddings).cluster_space_.shape   # a separate space
(n, 10)

The defaults were measured against the seed app's recipe on Fashion-MNIST (README,
Performance): PCA fitted on a sample, one neighbour graph, one 2-D layout started from the
principal components, 100 epochs, and from 4,096 points up 3 negative samples of weight 1.5.
With ``cluster_dims > 2`` both UMAP runs share the neighbour graph. Above ``layout_rows``
(200,000) images, a seeded sample of that many is laid out and the others are placed into it
as new images are placed into a saved map (map + clusters of 1M images in a fifth of the time).
umap-learn and numba are imported lazily; what this relies on of them beyond their public
API is in :mod:`.upstream`.

>>> xy, space = projector.transform(more_embeddings)   # new points into the fitted map;
...                                                     # the fitted points do not move
"""
from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import param

from . import upstream
from .cache import l2_normalise

SMALL_DATA = 4096  # below this the spectral start is cheap (auto init)
#: from SMALL_KNN to EXACT_KNN points the neighbour graph is exact, by brute force
#: (:class:`ExactNeighbours`: 0.6-0.8 s for 16k points), above it pynndescent's approximate one.
#: umap-learn 0.5.12 computes exact distances below 4,096 points through one Python call per
#: pair (5 s for 1,585 images; below SMALL_KNN it is left to do so), and pynndescent's
#: nn_descent compiles for ~14 s in every new process (numba cannot keep it on disk).
SMALL_KNN = 256
EXACT_KNN = 16_384
TRANSFORM_EPOCHS = 200
#: above this many points the map is laid out on a seeded sample of this many and the rest are
#: placed into it (:attr:`Projector.layout_rows`): map + clusters of 1M points in 101 s against 517 s
LAYOUT_ROWS = 200_000
PLACE_EPOCHS = 10  # optimisation epochs of the points placed into a sampled layout
PROJECT_ROWS = 65_536  # rows normalised and projected at a time
PCA_POWER = 3  # randomized SVD power iterations (sklearn's "auto" is 7): plenty for a UMAP input


def _import_umap():
    """umap-learn's UMAP and :func:`upstream.umap_api`'s ``nearest_neighbors`` (pynndescent's
    graph), with numba's disk cache switched on once per process."""
    return upstream.umap_api()


class ExactNeighbours(upstream.KnnSearchIndex):
    """The exact nearest neighbours among ``data`` under ``metric`` (cosine, correlation or
    euclidean, as pynndescent defines them), by brute force: scikit-learn's euclidean k-nearest
    search (BLAS products, a compiled top-k), on unit rows for cosine (1 - cos = |a - b|² / 2)
    and on centred unit rows for correlation. 0.6-0.8 s for 16k points × 64 dimensions here.

    Stands in for pynndescent's index in a fitted UMAP (the interface umap-learn uses:
    :class:`upstream.KnnSearchIndex`): umap-learn's ``transform`` asks it for the new points'
    neighbours (:meth:`query`), and it pickles with the map.

    >>> indices, distances = ExactNeighbours(x, "cosine").query(x[:5], 15)
    """

    def __init__(self, data: np.ndarray, metric: str):
        from sklearn.neighbors import NearestNeighbors

        if metric not in ("cosine", "correlation", "euclidean"):
            raise ValueError(f"no exact neighbours for metric {metric!r}")
        self.metric = metric
        self._search = NearestNeighbors(algorithm="brute", metric="euclidean").fit(self._prepared(data))

    def _prepared(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if self.metric == "euclidean":
            return x
        if self.metric == "correlation":
            x = x - x.mean(axis=1, keepdims=True)
        return l2_normalise(x)  # a new array

    def query(self, points: np.ndarray, k: int, epsilon: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
        """``(indices int32, distances float32)``, each ``len(points) × k``, nearest first
        (a point of ``data`` itself comes back at distance 0). ``epsilon`` (pynndescent's
        search slack) is not needed: the search is exact."""
        k = min(k, self._search.n_samples_fit_)
        distances, indices = self._search.kneighbors(self._prepared(points), n_neighbors=k)
        if self.metric != "euclidean":
            distances = np.square(distances) / 2
        return indices.astype(np.int32), distances.astype(np.float32)


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
    the same array as ``xy_`` when cluster_dims is 2), ``laid_out_`` (the rows of the sample laid
    out above ``layout_rows`` points, else None), ``pca_`` (or None), ``reducer_`` and
    ``cluster_reducer_`` (the 2-D and the cluster-space UMAP, None for sets too small for
    UMAP), which :meth:`transform` uses to place new points.
    """

    #: what :meth:`transform` needs; :meth:`fitted_models` / :meth:`restore` carry it
    FITTED = ("pca_", "reducer_", "cluster_reducer_")

    n_neighbors = param.Integer(
        default=15, bounds=(2, 200), doc="UMAP neighbours: larger favours global structure"
    )
    min_dist = param.Number(
        default=0.0, bounds=(0.0, 1.0),
        doc="UMAP minimum distance between points on the map (0 packs groups tightly, which suits "
        "clustering the map itself)",
    )
    cluster_dims = param.Integer(
        default=2,
        bounds=(2, 100),
        doc="dimensions of the UMAP space that HDBSCAN clusters in (2 = cluster the map itself: one "
        "layout instead of two, measured as good as 10 on Fashion-MNIST and 3x faster)",
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
    pca_fit_rows = param.Integer(
        default=4096, allow_None=True, bounds=(64, None),
        doc="fit the PCA on a seeded sample of this many rows, then project every row (empty = all rows)",
    )
    seed = param.Integer(
        default=42, allow_None=True, doc="random seed: same seed, same map (None = faster, not reproducible)"
    )
    map_epochs = param.Integer(
        default=100, allow_None=True, bounds=(1, None),
        doc="UMAP optimisation epochs of the 2-D map (empty = umap-learn's: 500 up to 10k points, 200 above)",
    )
    negative_sample_rate = param.Integer(
        default=None, allow_None=True, bounds=(1, 20),
        doc="UMAP negative samples per positive one, each epoch (umap-learn's default is 5; the "
        f"layout's cost grows with it); empty = auto: 2 below {SMALL_DATA:,} points, 3 from there",
    )
    repulsion_strength = param.Number(
        default=None, allow_None=True, bounds=(0.0, None),
        doc="weight of each negative sample (umap-learn's default is 1); empty = auto: 1 below "
        f"{SMALL_DATA:,} points, 1.5 from there. 3 samples of weight 1.5 push groups apart about as "
        "much as umap-learn's 5 of weight 1, for 3/5 of the cost; with 2 of weight 1, Fashion-MNIST "
        "60k's groups stayed merged (ARI 0.29 vs 0.39); small maps place new points better with 2 of 1",
    )
    init = param.Selector(
        default="auto", objects=["auto", "pca", "spectral"],
        doc="where the first layout starts: the embeddings' principal components (cheap), a spectral "
        "layout of the neighbour graph (umap-learn's default: 0.1 s at 10k points, 2 s at 60k), or "
        f"auto: spectral below {SMALL_DATA:,} points (it keeps small maps' groups apart), else PCA",
    )
    cluster_epochs = param.Integer(
        default=100, allow_None=True, bounds=(1, None),
        doc="UMAP optimisation epochs of the clustering space when cluster_dims > 2 (empty = umap-learn's)",
    )
    layout_rows = param.Integer(
        default=LAYOUT_ROWS, allow_None=True, bounds=(SMALL_KNN, None),
        doc="above this many images, lay out the map of a seeded sample of this many and place the "
        "others into it with the fitted UMAP model (as new images are placed into a saved map); "
        "HDBSCAN then clusters the sample and assigns the others (empty = lay out every image)",
    )
    map_init = param.Selector(
        default="cluster", objects=["spectral", "pca", "cluster"],
        doc="when cluster_dims > 2, where the map's layout starts: its own spectral or PCA layout, or "
        "the clustering space's first two principal components (computed first)",
    )

    def _reduce(self, embeddings: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings, through a PCA fitted here when ``pca_dims`` asks for one."""
        self.pca_ = None
        embeddings = np.asarray(embeddings)
        n, dims = embeddings.shape
        if not (self.pca_dims and dims > self.pca_dims and n > self.pca_dims):
            return l2_normalise(embeddings)
        from sklearn.decomposition import PCA

        self.pca_ = PCA(n_components=self.pca_dims, random_state=self.seed, iterated_power=PCA_POWER)
        rows = self.pca_fit_rows
        if rows and n > max(rows, self.pca_dims):
            sample = np.sort(np.random.default_rng(self.seed).choice(n, rows, replace=False))
            self.pca_.fit(l2_normalise(embeddings[sample]))
        else:
            self.pca_.fit(l2_normalise(embeddings))
        return self._project(embeddings)

    def _project(self, embeddings: np.ndarray) -> np.ndarray:
        """Normalise and PCA-project ``embeddings`` a block of rows at a time: no full-size
        normalised or centred copy (for 1M × 1280 vectors each would be another 5 GB)."""
        out = np.empty((len(embeddings), self.pca_.n_components_), np.float32)
        for start in range(0, len(embeddings), PROJECT_ROWS):
            block = l2_normalise(embeddings[start : start + PROJECT_ROWS])
            out[start : start + len(block)] = self.pca_.transform(block)
        return out

    def fit(self, embeddings: np.ndarray) -> "Projector":
        """Compute the 2-D map and the clustering space of ``embeddings``: every row laid out,
        or above ``layout_rows`` rows a seeded sample laid out (``laid_out_`` holds its row
        numbers, else None) and the other rows placed into it."""
        x = self._reduce(embeddings)
        self.laid_out_ = None
        if not self.layout_rows or len(x) <= self.layout_rows:
            return self._fit_reduced(x)
        sample = np.sort(np.random.default_rng(self.seed).choice(len(x), self.layout_rows, replace=False))
        self._fit_reduced(x[sample])
        rest = np.ones(len(x), bool)
        rest[sample] = False
        xy, space = self._place(x[rest], PLACE_EPOCHS)
        self.xy_ = _merged(self.xy_, xy, sample, rest)
        self.cluster_space_ = self.xy_ if space is xy else _merged(self.cluster_space_, space, sample, rest)
        self.laid_out_ = sample
        return self

    def _fit_reduced(self, x: np.ndarray) -> "Projector":
        n = len(x)
        k = min(self.n_neighbors, n - 1)
        self.reducer_ = self.cluster_reducer_ = None
        if k < 2 or n <= self.cluster_dims + 2:
            self.xy_ = _fallback_coords(x, 2)
            self.cluster_space_ = _fallback_coords(x, self.cluster_dims)
            return self

        UMAP, nearest_neighbors = _import_umap()
        knn: tuple = (None, None, None)  # below SMALL_KNN points: umap-learn's own exact pairs
        if SMALL_KNN <= n <= EXACT_KNN:
            index = ExactNeighbours(x, self.metric)
            knn = (*index.query(x, k), index)
        elif n > EXACT_KNN:
            knn = nearest_neighbors(x, k, self.metric, self.seed)

        small = n < SMALL_DATA  # the auto settings below
        negatives = self.negative_sample_rate or (2 if small else 3)
        repulsion = (1.0 if small else 1.5) if self.repulsion_strength is None else self.repulsion_strength

        def umap(dims: int, min_dist: float, epochs: Optional[int], init) -> "UMAP":
            if isinstance(init, str) and n <= 4 * dims:
                init = "random"  # too few points for a spectral or PCA start
            return UMAP(
                n_components=dims,
                n_neighbors=k,
                min_dist=min_dist,
                n_epochs=epochs,
                negative_sample_rate=negatives,
                repulsion_strength=repulsion,
                metric=self.metric,
                random_state=self.seed,
                precomputed_knn=knn,
                init=init,
            )

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            warnings.filterwarnings("ignore", message=".*precomputed_knn.*")
            init = self.init if self.init != "auto" else "spectral" if small else "pca"
            if self.cluster_dims != 2:
                # tight packing (min_dist 0) suits density-based clustering
                self.cluster_reducer_ = umap(self.cluster_dims, 0.0, self.cluster_epochs, init)
                self.cluster_space_ = self.cluster_reducer_.fit_transform(x).astype(np.float32)
                init = self.map_init
                if self.map_init == "cluster":
                    init = _fallback_coords(self.cluster_space_ - self.cluster_space_.mean(0), 2) if n > 8 else "random"
            self.reducer_ = umap(2, self.min_dist, self.map_epochs, init)
            self.xy_ = self.reducer_.fit_transform(x).astype(np.float32)
            if self.cluster_dims == 2:
                self.cluster_reducer_, self.cluster_space_ = self.reducer_, self.xy_
        return self

    def fitted_models(self) -> dict:
        """The fitted PCA and UMAP models (picklable), for :meth:`restore` in a later process."""
        return {name: getattr(self, name, None) for name in self.FITTED}

    def restore(self, models: dict) -> "Projector":
        """Take back models from :meth:`fitted_models`, so that :meth:`transform` works."""
        for name in self.FITTED:
            setattr(self, name, models[name])
        return self

    def transform(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Place new ``embeddings`` into the fitted map and clustering space (UMAP ``transform``:
        the fitted points keep their coordinates). Returns ``(xy, cluster_space)``."""
        if getattr(self, "reducer_", None) is None:
            raise ValueError("this Projector has no fitted UMAP to place new points with; fit it first")
        x = np.asarray(embeddings)
        if not len(x):
            space_dims = self.cluster_reducer_.n_components
            return np.zeros((0, 2), np.float32), np.zeros((0, space_dims), np.float32)
        return self._place(self._project(x) if self.pca_ is not None else l2_normalise(x))

    def _place(self, x: np.ndarray, epochs: int = TRANSFORM_EPOCHS) -> tuple[np.ndarray, np.ndarray]:
        """Reduced (normalised, PCA-projected) rows into the fitted map and clustering space."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        _import_umap()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*n_jobs.*")
            xy = _transform(self.reducer_, x, epochs)
            space = xy if self.cluster_reducer_ is self.reducer_ else _transform(self.cluster_reducer_, x, epochs)
        return xy, space


def _merged(fitted: np.ndarray, placed: np.ndarray, sample: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """One array in row order: ``fitted`` at the rows ``sample``, ``placed`` at the rows where ``rest``."""
    out = np.empty((len(sample) + len(placed), fitted.shape[1]), np.float32)
    out[sample], out[rest] = fitted, placed
    return out


def _transform(reducer, x: np.ndarray, epochs: int = TRANSFORM_EPOCHS) -> np.ndarray:
    """``reducer.transform(x)`` optimising the new points for ``epochs`` epochs (umap-learn
    would use a third of the fit's epochs; only the new points' edges are optimised, so this is
    cheap, and it places them closer to their neighbours)."""
    fitted = reducer.n_epochs
    reducer.n_epochs = 3 * epochs
    try:
        return reducer.transform(x).astype(np.float32)
    finally:
        reducer.n_epochs = fitted
