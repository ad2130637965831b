"""Every private part of numba, umap-learn, pynndescent and hdbscan that bulk_panel relies on, in
one place. A change fails with :class:`UpstreamChanged` (library, installed version, the thing,
what it breaks) rather than with a bare ``AttributeError`` deep inside a fit;
``tests/test_upstream.py`` checks every item below against the installed versions, and
``pyproject.toml`` bounds each library below the next release that could move them.

Checked against umap-learn 0.5.12, pynndescent 0.7.0, numba 0.68.1 and hdbscan 0.8.44.

numba (:func:`enable_numba_caching`: umap-learn and pynndescent compile most of their
functions without ``cache=True``; switching it on afterwards took a new process's map of 2,000
images from 34.6 s to 15 s):

- ``numba.core.caching.NullCache``: the cache of a function compiled without ``cache=True``.
- ``numba.core.dispatcher.Dispatcher`` and its ``_cache``, ``overloads``, ``py_func`` and
  ``enable_caching()``: which functions to switch, and the switch.
- If these change: :func:`enable_numba_caching` raises; :func:`umap_api` logs that message as
  a warning and maps without the disk cache (each new process compiles umap-learn again,
  ~35 s): a speed-up is lost, no result changes. (So numba is bounded below 1, not below its
  next minor: its minor releases follow Python and NumPy releases.)

umap-learn:

- ``umap.umap_.nearest_neighbors(X, n_neighbors, metric, metric_kwds, angular, random_state,
  ..., n_jobs=...)``: pynndescent's neighbour graph and index, outside the public API;
  Projector computes it once above 16,384 points and hands it to both UMAP layouts
  (``precomputed_knn``). If its parameters change: :func:`umap_api` raises.
- ``UMAP.transform`` on a fitted map asks the search index it was given
  (``precomputed_knn[2]``, kept as ``_knn_search_index``) for its ``_angular_trees`` flag and
  for ``query(X, k, epsilon=...)``: :class:`KnnSearchIndex` is that interface, which
  ``project.ExactNeighbours`` (the exact graph from 256 to 16,384 points) implements. If
  umap-learn asks the index for anything else, placing new images into a saved map of that
  size raises :class:`UpstreamChanged` (from :meth:`KnnSearchIndex.__getattr__`).

- ``umap.umap_.init_graph_transform(graph, embedding)``, where ``UMAP.transform`` starts new
  points (each the weighted mean of its neighbours' positions), loops over the rows in Python:
  1.4 s for 20,000 points here, a minute or more for the 800,000 points a 1M map places.
  :func:`umap_api` swaps in :func:`init_graph_transform`, the same result from a sparse-matrix
  product (9 ms for those 20,000). If the name is gone: a warning, and umap-learn's own runs.

pynndescent:

- the names of ``nn_descent`` and ``nn_descent_internal`` (``pynndescent.pynndescent_``),
  which take the distance function as an argument, so numba cannot keep them on disk: they are
  left as they are (:data:`NUMBA_UNCACHEABLE`). If renamed, numba warns in each new process
  that it cannot cache them; nothing else changes.
- ``NNDescent._angular_trees``: what umap-learn's ``transform`` reads (above) on pynndescent's
  own index; :class:`KnnSearchIndex` mirrors it.

hdbscan:

- ``HDBSCAN.condensed_tree_.to_numpy()`` (public) with the fields ``parent``, ``child``,
  ``lambda_val``, ``child_size`` (the layout of the private ``CondensedTree._raw_tree`` it
  copies): ``cluster.birth_distances`` reads each cluster's birth from it, which
  ``Clusterer.predict`` needs. If the fields change: :func:`condensed_tree` raises, and
  ``Clusterer.fit`` with it.

Nothing here imports numba, umap-learn, pynndescent or hdbscan at module level.
"""
from __future__ import annotations

import functools
import logging
import sys
import warnings
from typing import NamedTuple, Optional

import numpy as np

log = logging.getLogger("bulk_panel")

#: the versions every item above was checked against
CHECKED_AGAINST = {"umap-learn": "0.5.12", "pynndescent": "0.7.0", "numba": "0.68.1", "hdbscan": "0.8.44"}

NUMBA_PACKAGES = ("umap", "pynndescent")
#: upstream functions replaced by equivalents (name → the original), kept to compare against
REPLACED: dict = {}
#: pynndescent functions numba cannot keep on disk (they take the distance function as an
#: argument): left as they are, since asking only earns a warning. nn_descent compiles in ~14 s
#: per process.
NUMBA_UNCACHEABLE = frozenset({"nn_descent", "nn_descent_internal"})
#: the keyword arguments :func:`umap_api`'s ``nearest_neighbors`` passes to umap-learn's
NEAREST_NEIGHBORS_KEYWORDS = ("n_neighbors", "metric", "metric_kwds", "angular", "random_state", "n_jobs")
#: the fields of hdbscan's condensed tree that :func:`condensed_tree` guarantees
CONDENSED_TREE_FIELDS = ("parent", "child", "lambda_val", "child_size")


def installed(distribution: str) -> str:
    """The installed version of ``distribution`` (e.g. ``"umap-learn"``), or ``"(not installed)"``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "(not installed)"


class UpstreamChanged(RuntimeError):
    """A private part of a library that bulk_panel relies on is gone or has changed shape.

    >>> raise UpstreamChanged("hdbscan", "condensed_tree_.to_numpy()", "has no field 'child'",
    ...                       "Clusterer.fit cannot find the clusters' birth distances")
    """

    def __init__(self, library: str, thing: str, problem: str, breaks: str, checked: Optional[str] = None,
                 where: str = "bulk_panel/compute/upstream.py"):
        checked = checked or CHECKED_AGAINST.get(library, "?")
        self.library, self.thing = library, thing
        super().__init__(
            f"{library} {installed(library)}: {thing} {problem}. bulk_panel relies on it "
            f"(checked against {library} {checked}): {breaks}. {where} lists what bulk_panel "
            f"uses of {library}; install {library} {checked} or adapt that module."
        )

    def __reduce__(self):  # pickles (to another process) with its message, not its arguments
        return _restored, (type(self), str(self), self.library, self.thing)


def _restored(cls, message: str, library: str, thing: str) -> UpstreamChanged:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.library, error.thing = library, thing
    return error


class UpstreamAttributeError(UpstreamChanged, AttributeError):
    """:class:`UpstreamChanged` for an attribute a library asked for (still an ``AttributeError``,
    so ``hasattr`` and pickle keep working)."""


# ---- numba ----------------------------------------------------------------------------------------
def _numba_internals():
    """numba's ``NullCache`` and ``Dispatcher``, or :class:`UpstreamChanged`."""
    breaks = "umap-learn's compiled code cannot be kept on disk"
    try:
        from numba.core.caching import NullCache
    except ImportError as exc:
        raise UpstreamChanged("numba", "numba.core.caching.NullCache", "cannot be imported", breaks) from exc
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError as exc:
        raise UpstreamChanged("numba", "numba.core.dispatcher.Dispatcher", "cannot be imported", breaks) from exc
    if not callable(getattr(Dispatcher, "enable_caching", None)):
        raise UpstreamChanged("numba", "Dispatcher.enable_caching()", "is gone", breaks)
    return NullCache, Dispatcher


def enable_numba_caching(packages=NUMBA_PACKAGES) -> int:
    """Let numba keep the compiled code of these (imported) packages on disk.

    umap-learn and pynndescent compile most of their functions without ``cache=True``, which
    cost a new process ~35 s here (2,000 images: 33.7 s of a 34.6 s map); with caching the
    second process loads them instead (15 s, of which nn_descent: 14 s). Returns how many
    functions were switched. Where the files go: ``$NUMBA_CACHE_DIR`` (the CLI sets it).
    """
    NullCache, Dispatcher = _numba_internals()
    switched = 0
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in packages:
            continue
        for obj in list(vars(module).values()):
            if not isinstance(obj, Dispatcher):
                continue
            try:
                switch = (isinstance(obj._cache, NullCache) and not obj.overloads
                          and obj.py_func.__name__ not in NUMBA_UNCACHEABLE)
            except AttributeError as exc:
                raise UpstreamChanged("numba", f"Dispatcher.{getattr(exc, 'name', None) or exc}", "is gone",
                                      "umap-learn's compiled code cannot be kept on disk") from exc
            if switch:
                obj.enable_caching()
                switched += 1
    return switched


# ---- umap-learn and pynndescent -----------------------------------------------------------------
class UmapApi(NamedTuple):
    """umap-learn's ``UMAP`` class, and :func:`umap_api`'s ``nearest_neighbors``."""

    UMAP: type
    nearest_neighbors: object


def umap_nearest_neighbors():
    """umap-learn's ``umap.umap_.nearest_neighbors``, checked for the keyword arguments
    :func:`umap_api` passes it (:data:`NEAREST_NEIGHBORS_KEYWORDS`); else :class:`UpstreamChanged`."""
    import inspect

    from umap import umap_

    breaks = "maps above 16,384 points cannot build their neighbour graph"
    found = getattr(umap_, "nearest_neighbors", None)
    if not callable(found):
        raise UpstreamChanged("umap-learn", "umap.umap_.nearest_neighbors", "is gone", breaks)
    parameters = inspect.signature(found).parameters
    missing = [name for name in NEAREST_NEIGHBORS_KEYWORDS if name not in parameters]
    if missing:
        raise UpstreamChanged("umap-learn", "umap.umap_.nearest_neighbors", f"takes no {', '.join(missing)}", breaks)
    return found


@functools.lru_cache(maxsize=1)
def umap_api() -> UmapApi:
    """umap-learn's ``UMAP`` and ``nearest_neighbors(x, k, metric, seed, n_jobs=-1)`` →
    ``(indices, distances, index)`` (pynndescent's approximate graph and its search index),
    with numba's disk cache switched on for umap's and pynndescent's functions (once per
    process; a warning when numba's internals have changed). Raises :class:`UpstreamChanged`
    when umap-learn's ``nearest_neighbors`` has."""
    from umap import UMAP

    found = umap_nearest_neighbors()

    def nearest_neighbors(x: np.ndarray, k: int, metric: str, seed: Optional[int], n_jobs: int = -1):
        """pynndescent's approximate ``k`` nearest neighbours of each row of ``x`` under
        ``metric``: ``(indices, distances, search index)``, as UMAP's ``precomputed_knn`` takes them."""
        return found(x, n_neighbors=k, metric=metric, metric_kwds={}, angular=False,
                     random_state=np.random.RandomState(seed), n_jobs=n_jobs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            enable_numba_caching()
        except UpstreamChanged as exc:  # a speed-up only: map without the disk cache
            log.warning("%s", exc)
    try:
        replace_graph_transform_start()
    except UpstreamChanged as exc:  # a speed-up only: umap-learn's own loop places new points
        log.warning("%s", exc)
    return UmapApi(UMAP, nearest_neighbors)


def init_graph_transform(graph, embedding: np.ndarray) -> np.ndarray:
    """umap-learn's ``init_graph_transform`` without its Python loop over rows: for each row of
    ``graph`` (new points × fitted points, membership strengths), the position in ``embedding``
    of its first neighbour of strength 1 if it has one, else the strength-weighted mean of its
    neighbours' positions; NaN for a row without neighbours. float32, like umap-learn's."""
    import scipy.sparse

    graph = scipy.sparse.csr_matrix(graph)
    embedding = np.asarray(embedding, dtype=np.float32)
    counts = np.diff(graph.indptr)
    sums = np.asarray(graph.sum(axis=1), dtype=np.float64).ravel()
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (graph @ embedding.astype(np.float64)) / sums[:, None]
    result[counts == 0] = np.nan
    ones = np.flatnonzero(graph.data == 1)
    if len(ones):
        row_of = np.repeat(np.arange(graph.shape[0]), counts)[ones]
        rows, first = np.unique(row_of, return_index=True)  # each row's first strength-1 entry
        result[rows] = embedding[graph.indices[ones[first]]]
    return result.astype(np.float32)


def replace_graph_transform_start() -> None:
    """Put :func:`init_graph_transform` in place of umap-learn's (same result, vectorised);
    :class:`UpstreamChanged` if umap-learn has no such function any more."""
    from umap import umap_

    found = getattr(umap_, "init_graph_transform", None)
    if found is init_graph_transform:
        return
    if not callable(found):
        raise UpstreamChanged("umap-learn", "umap.umap_.init_graph_transform", "is gone",
                              "placing many new points into a map is slower (umap-learn's own loop)")
    REPLACED["umap.umap_.init_graph_transform"] = found
    umap_.init_graph_transform = init_graph_transform


class KnnSearchIndex:
    """The interface umap-learn's ``UMAP.transform`` uses of the search index in
    ``precomputed_knn[2]`` (pynndescent's ``NNDescent`` when umap-learn builds it): the
    ``_angular_trees`` flag (it picks the search's epsilon) and :meth:`query`. Subclasses
    implement :meth:`query`; anything else umap-learn asks for raises
    :class:`UpstreamAttributeError` naming the attribute and the installed umap-learn."""

    _angular_trees = False  # read by umap-learn's transform (epsilon 0.24 if True, else 0.12)

    def query(self, points: np.ndarray, k: int, epsilon: Optional[float] = None) -> tuple[np.ndarray, np.ndarray]:
        """``(indices int32, distances float32)`` of the ``k`` nearest indexed points of each of
        ``points``, nearest first. ``epsilon``: pynndescent's search slack."""
        raise NotImplementedError

    def __getattr__(self, name: str):
        # only for names the class and the instance do not have; dunders (pickle, copy) stay plain
        if name.startswith("__"):
            raise AttributeError(name)
        raise UpstreamAttributeError(
            "umap-learn", f"the search index's {name!r}", f"was asked of {type(self).__name__}, which has only "
            "_angular_trees and query()", "new points cannot be placed into maps of 256 to 16,384 points")


# ---- hdbscan --------------------------------------------------------------------------------------
def condensed_tree(model) -> np.ndarray:
    """A fitted ``hdbscan.HDBSCAN``'s condensed tree: a structured array with (at least) the
    fields ``parent``, ``child``, ``lambda_val``, ``child_size``; raises
    :class:`UpstreamChanged` when it has not."""
    breaks = "Clusterer cannot find the clusters' birth distances (placing new points needs them)"
    try:
        tree = model.condensed_tree_.to_numpy()
    except AttributeError as exc:
        raise UpstreamChanged("hdbscan", "HDBSCAN.condensed_tree_.to_numpy()", "is gone", breaks) from exc
    names = getattr(getattr(tree, "dtype", None), "names", None) or ()
    missing = [field for field in CONDENSED_TREE_FIELDS if field not in names]
    if missing:
        raise UpstreamChanged("hdbscan", "HDBSCAN.condensed_tree_.to_numpy()",
                              f"has no field {', '.join(missing)} (its fields: {', '.join(names) or 'none'})", breaks)
    return tree
