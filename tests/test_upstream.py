"""The private parts of numba, umap-learn, pynndescent and hdbscan that bulk_panel relies on
(``bulk_panel/compute/upstream.py``), one test each: each fails naming the library, its installed version and the thing when an upgrade moves it. Fast:
attributes, signatures and sources only; nothing fits UMAP."""
import inspect
import pickle
import re
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from bulk_panel.compute import upstream
from bulk_panel.compute.project import ExactNeighbours
from bulk_panel.compute.upstream import UpstreamAttributeError, UpstreamChanged


def expect(ok, library: str, thing: str, problem: str, breaks: str, **where):
    """Fail with :class:`UpstreamChanged`'s message (library, installed and checked versions, thing)."""
    if not ok:
        pytest.fail(str(UpstreamChanged(library, thing, problem, breaks, **where)), pytrace=False)


def imported(library: str, module: str, name: str, breaks: str):
    """``module.name``, or a failure naming the library and its version."""
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        expect(False, library, f"{module}.{name}", f"cannot be imported ({exc})", breaks)


NUMBA_BREAKS = "umap-learn's compiled code cannot be kept on disk (enable_numba_caching)"
UMAP_BREAKS = "new points cannot be placed into a saved map of 256 to 16,384 points (ExactNeighbours)"


def _double(x):  # a module-level function for numba (its cache needs a source file)
    return 2 * x


def _named(name: str):
    def function(x):
        return x
    function.__name__ = name
    return function


# ---- numba --------------------------------------------------------------------------------------
def test_numba_null_cache_is_importable():
    NullCache = imported("numba", "numba.core.caching", "NullCache", NUMBA_BREAKS)
    expect(isinstance(NullCache, type), "numba", "numba.core.caching.NullCache", "is not a class", NUMBA_BREAKS)


def test_numba_dispatcher_has_cache_overloads_py_func_and_enable_caching():
    import numba

    Dispatcher = imported("numba", "numba.core.dispatcher", "Dispatcher", NUMBA_BREAKS)
    NullCache = imported("numba", "numba.core.caching", "NullCache", NUMBA_BREAKS)
    jitted = numba.njit(_double)  # not compiled yet, no cache=True
    expect(isinstance(jitted, Dispatcher), "numba", "numba.core.dispatcher.Dispatcher",
           f"is not the type of an njit function ({type(jitted).__mro__})", NUMBA_BREAKS)
    expect(isinstance(getattr(jitted, "_cache", None), NullCache), "numba", "Dispatcher._cache",
           f"is not a NullCache without cache=True ({getattr(jitted, '_cache', 'missing')!r})", NUMBA_BREAKS)
    expect(len(getattr(jitted, "overloads", [0])) == 0, "numba", "Dispatcher.overloads",
           "is missing or not empty before the first call", NUMBA_BREAKS)
    expect(getattr(jitted, "py_func", None) is _double, "numba", "Dispatcher.py_func",
           "is not the Python function", NUMBA_BREAKS)
    enable = getattr(jitted, "enable_caching", None)
    expect(callable(enable) and not inspect.signature(enable).parameters, "numba", "Dispatcher.enable_caching()",
           "is missing or takes arguments", NUMBA_BREAKS)


def test_enable_numba_caching_switches_only_uncompiled_cacheable_functions(tmp_path, monkeypatch):
    import numba
    from numba.core.caching import NullCache

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path))  # numba's cache files go here
    package = types.ModuleType("fake_numba_package")
    package.switch = numba.njit(_double)
    package.compiled = numba.njit(lambda x: x + 1)
    package.compiled(1)  # has an overload: left as it is
    package.nn_descent = numba.njit(_named("nn_descent"))  # pynndescent's uncacheable name: left as it is
    monkeypatch.setitem(sys.modules, "fake_numba_package", package)

    switched = upstream.enable_numba_caching(packages=("fake_numba_package",))
    expect(switched == 1 and not isinstance(package.switch._cache, NullCache), "numba",
           "Dispatcher.enable_caching()", f"switched {switched} functions (expected 1) or left a NullCache",
           NUMBA_BREAKS)
    assert isinstance(package.nn_descent._cache, NullCache) and isinstance(package.compiled._cache, NullCache)
    assert package.switch(3) == 6


# ---- pynndescent -------------------------------------------------------------------------------
def test_pynndescent_uncacheable_functions_keep_their_names():
    from numba.core.dispatcher import Dispatcher

    module = pytest.importorskip("pynndescent.pynndescent_")
    for name in sorted(upstream.NUMBA_UNCACHEABLE):
        expect(isinstance(getattr(module, name, None), Dispatcher), "pynndescent", f"pynndescent.pynndescent_.{name}",
               "is gone or no longer a numba function",
               "numba prints a 'cannot cache' warning in each new process (NUMBA_UNCACHEABLE)")


def test_pynndescent_index_has_angular_trees_and_query_with_epsilon():
    from pynndescent import NNDescent

    breaks = "umap-learn's transform expects more of a search index than ExactNeighbours offers"
    expect("_angular_trees" in inspect.getsource(NNDescent), "pynndescent", "NNDescent._angular_trees",
           "is no longer set", breaks)
    parameters = inspect.signature(NNDescent.query).parameters
    expect(list(parameters)[1:3] == ["query_data", "k"] and "epsilon" in parameters, "pynndescent",
           "NNDescent.query(query_data, k, epsilon=...)", f"has changed shape: {list(parameters)}", breaks)


# ---- umap-learn --------------------------------------------------------------------------------
def test_umap_nearest_neighbors_takes_the_arguments_passed():
    nearest_neighbors = imported("umap-learn", "umap.umap_", "nearest_neighbors",
                                 "maps above 16,384 points cannot build their neighbour graph")
    parameters = inspect.signature(nearest_neighbors).parameters
    missing = [name for name in upstream.NEAREST_NEIGHBORS_KEYWORDS if name not in parameters]
    expect(not missing and list(parameters)[0] == "X", "umap-learn", "umap.umap_.nearest_neighbors",
           f"takes no {missing} (its parameters: {list(parameters)})",
           "maps above 16,384 points cannot build their neighbour graph")
    assert upstream.umap_nearest_neighbors() is nearest_neighbors


def test_umap_nearest_neighbors_check_fails_loudly(monkeypatch):
    from umap import umap_

    monkeypatch.setattr(umap_, "nearest_neighbors", lambda X, k, metric: None)
    with pytest.raises(UpstreamChanged, match=r"umap-learn \S+: umap\.umap_\.nearest_neighbors takes no n_neighbors"):
        upstream.umap_nearest_neighbors()


def test_umap_fit_keeps_the_precomputed_search_index():
    from umap import UMAP

    source = inspect.getsource(UMAP.fit)
    kept = re.search(r"self\.knn_search_index\s*=\s*self\.precomputed_knn\[2\]", source) and re.search(
        r"self\._knn_search_index\s*=\s*self\.knn_search_index", source)
    expect("precomputed_knn" in inspect.signature(UMAP).parameters and kept, "umap-learn",
           "UMAP.fit keeping precomputed_knn[2] as _knn_search_index", "no longer holds", UMAP_BREAKS)


def test_umap_transform_asks_the_index_only_for_angular_trees_and_query():
    from umap import UMAP

    source = inspect.getsource(UMAP.transform)
    asked = set(re.findall(r"self\._knn_search_index\.(\w+)", source))
    expect("_angular_trees" in asked, "umap-learn", "UMAP.transform reading _knn_search_index._angular_trees",
           "no longer holds", UMAP_BREAKS)
    expect(re.search(r"self\._knn_search_index\.query\([^)]*epsilon=", source), "umap-learn",
           "UMAP.transform calling _knn_search_index.query(X, k, epsilon=...)", "no longer holds", UMAP_BREAKS)
    expect(asked <= {"_angular_trees", "query"}, "umap-learn", "UMAP.transform's use of the search index",
           f"asks for {sorted(asked - {'_angular_trees', 'query'})} too", UMAP_BREAKS)


def test_the_vectorised_graph_transform_start_equals_umaps_own():
    import scipy.sparse
    from umap import umap_

    upstream.replace_graph_transform_start()
    expect(umap_.init_graph_transform is upstream.init_graph_transform, "umap-learn",
           "umap.umap_.init_graph_transform", "could not be replaced", "placing many new points is slower")
    original = upstream.REPLACED["umap.umap_.init_graph_transform"]
    rng = np.random.default_rng(0)
    rows, k = 300, 6
    cols = rng.integers(0, 500, size=(rows, k))
    vals = rng.uniform(0.05, 0.99, size=(rows, k)).astype(np.float32)
    vals[::7, 2] = 1.0   # an exact match (strength 1) part-way along some rows
    vals[::7, 4] = 1.0   # and a later one: the first counts
    vals[5::11] = 0.0    # rows without neighbours
    graph = scipy.sparse.coo_matrix((vals.ravel(), (np.repeat(np.arange(rows), k), cols.ravel())),
                                    shape=(rows, 500)).tocsr()
    graph.eliminate_zeros()
    embedding = rng.normal(size=(500, 2)).astype(np.float32)
    ours, theirs = upstream.init_graph_transform(graph, embedding), original(graph, embedding)
    assert ours.dtype == theirs.dtype == np.float32
    assert np.isnan(theirs).any() and (np.isnan(ours) == np.isnan(theirs)).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_the_stand_in_index_fails_loudly_on_anything_else_and_pickles():
    index = ExactNeighbours(np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32), "cosine")
    assert index._angular_trees is False
    with pytest.raises(UpstreamAttributeError, match=r"umap-learn \S+: the search index's 'neighbor_graph'"):
        index.neighbor_graph
    assert not hasattr(index, "_raw_data")  # still an AttributeError for hasattr and getattr
    again = pickle.loads(pickle.dumps(index))
    np.testing.assert_array_equal(again.query(np.ones((1, 4)), 3)[0], index.query(np.ones((1, 4)), 3)[0])


# ---- hdbscan -----------------------------------------------------------------------------------
def test_hdbscan_condensed_tree_has_the_fields_birth_distances_read():
    import hdbscan

    x = np.concatenate([np.random.default_rng(0).normal(c, 0.3, (30, 2)) for c in (0, 5)])
    model = hdbscan.HDBSCAN(min_cluster_size=5).fit(x)
    breaks = "Clusterer cannot find the clusters' birth distances"
    try:
        tree = model.condensed_tree_.to_numpy()
    except AttributeError as exc:
        expect(False, "hdbscan", "HDBSCAN.condensed_tree_.to_numpy()", f"is gone ({exc})", breaks)
    names = tree.dtype.names or ()
    expect(all(f in names for f in upstream.CONDENSED_TREE_FIELDS), "hdbscan", "HDBSCAN.condensed_tree_.to_numpy()",
           f"has the fields {names}, not {upstream.CONDENSED_TREE_FIELDS}", breaks)
    clusters = tree[tree["child_size"] > 1]
    # what birth_distances relies on: points are 0..n-1, the root is n, node ids grow away from it
    expect((tree["child"][tree["child_size"] == 1] < len(x)).all() and tree["parent"].min() == len(x)
           and (clusters["child"] > clusters["parent"]).all() and (tree["lambda_val"] > 0).all(),
           "hdbscan", "the condensed tree's node numbering", "has changed", breaks)
    assert upstream.condensed_tree(model).dtype == tree.dtype


def test_condensed_tree_fails_loudly_without_its_fields():
    model = SimpleNamespace(condensed_tree_=SimpleNamespace(to_numpy=lambda: np.zeros(2, [("parent", "i8")])))
    with pytest.raises(UpstreamChanged, match=r"hdbscan \S+: .*has no field child, lambda_val, child_size"):
        upstream.condensed_tree(model)
    with pytest.raises(UpstreamChanged, match=r"HDBSCAN.condensed_tree_.to_numpy\(\) is gone") as raised:
        upstream.condensed_tree(SimpleNamespace())
    again = pickle.loads(pickle.dumps(raised.value))  # e.g. from a worker process
    assert type(again) is UpstreamChanged and str(again) == str(raised.value) and again.library == "hdbscan"
