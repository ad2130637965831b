"""Projector internals that the real-pipeline tests don't see: the sampled PCA fit, the
block-wise projection, the neighbour graph source (real PCA and UMAP, synthetic vectors)."""
import pickle

import numpy as np
import pytest

from bulk_panel.compute import project
from bulk_panel.compute.cache import l2_normalise
from bulk_panel.compute.project import Projector


def blobs(n=600, dims=48, groups=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, dims)) * 4
    return (centres[rng.integers(0, groups, n)] + rng.normal(size=(n, dims))).astype(np.float32)


def test_pca_is_fitted_on_a_sample_and_projects_every_row_in_blocks(monkeypatch):
    x = blobs()
    monkeypatch.setattr(project, "PROJECT_ROWS", 7)  # many blocks, one short last block
    proj = Projector(pca_dims=8, pca_fit_rows=100)
    reduced = proj._reduce(x)
    assert proj.pca_.n_samples_ == 100
    np.testing.assert_allclose(reduced, proj.pca_.transform(l2_normalise(x)), rtol=1e-5, atol=1e-6)
    assert reduced.shape == (600, 8) and reduced.dtype == np.float32

    whole = Projector(pca_dims=8, pca_fit_rows=None)
    whole._reduce(x)
    assert whole.pca_.n_samples_ == 600


def test_no_pca_keeps_the_normalised_vectors():
    x = blobs(n=50, dims=6)
    proj = Projector(pca_dims=8)
    np.testing.assert_allclose(proj._reduce(x), l2_normalise(x))
    assert proj.pca_ is None


@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean"])
def test_exact_neighbours_are_those_of_sklearn_brute_force(metric):
    from sklearn.neighbors import NearestNeighbors

    x = blobs(n=300, dims=12)
    index = project.ExactNeighbours(x, metric)
    got_i, got_d = index.query(x[:150], 10)
    want_d, want_i = NearestNeighbors(n_neighbors=10, metric=metric, algorithm="brute").fit(x).kneighbors(x[:150])
    np.testing.assert_allclose(got_d, want_d, atol=2e-5)
    assert (got_i == want_i).mean() > 0.99  # ties may swap
    assert got_i.dtype == np.int32 and got_d.dtype == np.float32
    assert (got_i[:, 0] == np.arange(150)).all() and np.allclose(got_d[:, 0], 0, atol=1e-5)  # itself first


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.slow
def test_maps_take_exact_or_pynndescent_neighbours_and_place_new_points(exact, monkeypatch):
    x = blobs(n=340)
    if not exact:
        monkeypatch.setattr(project, "EXACT_KNN", 100)  # above it: pynndescent's approximate graph
    proj = Projector(pca_dims=16).fit(x[:-20])
    index = proj.reducer_._knn_search_index
    assert isinstance(index, project.ExactNeighbours) == exact and index is not None
    assert proj.cluster_space_ is proj.xy_  # one layout: the map is the clustering space
    xy, space = proj.transform(x[-20:])
    assert xy.shape == (20, 2) and np.isfinite(xy).all() and space is xy
    restored = pickle.loads(pickle.dumps(proj.fitted_models()))  # a saved map places points too
    again, _ = Projector(pca_dims=16).restore(restored).transform(x[-20:])
    assert again.shape == (20, 2) and np.isfinite(again).all()


@pytest.mark.slow
def test_negative_sampling_settings_reach_umap_and_change_the_layout(monkeypatch):
    x = blobs(n=300)
    small = Projector(pca_dims=16, map_epochs=30).fit(x)  # auto, below SMALL_DATA: umap-like
    assert (small.reducer_.negative_sample_rate, small.reducer_.repulsion_strength) == (2, 1.0)
    monkeypatch.setattr(project, "SMALL_DATA", 100)  # auto, from SMALL_DATA up: a stronger push
    large = Projector(pca_dims=16, map_epochs=30, init="pca").fit(x)
    assert (large.reducer_.negative_sample_rate, large.reducer_.repulsion_strength) == (3, 1.5)
    weaker = Projector(pca_dims=16, map_epochs=30, init="pca", repulsion_strength=1.0).fit(x)
    assert weaker.reducer_.repulsion_strength == 1.0
    assert not np.allclose(large.xy_, weaker.xy_)  # the weight is used, not only stored


@pytest.mark.slow
@pytest.mark.parametrize("cluster_dims", [2, 3])
def test_above_layout_rows_a_sample_is_laid_out_and_the_rest_placed_and_clustered(cluster_dims):
    from sklearn.metrics import adjusted_rand_score

    from bulk_panel.compute.cluster import Clusterer

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(5, 32)) * 6
    truth = rng.integers(0, 5, 1500)
    x = (centres[truth] + rng.normal(size=(1500, 32))).astype(np.float32)
    proj = Projector(pca_dims=16, layout_rows=600, cluster_dims=cluster_dims).fit(x)
    sample = proj.laid_out_
    assert len(sample) == len(np.unique(sample)) == 600 and (np.diff(sample) > 0).all()
    assert proj.xy_.shape == (1500, 2) and np.isfinite(proj.xy_).all()
    assert proj.cluster_space_.shape == (1500, cluster_dims) and np.isfinite(proj.cluster_space_).all()
    np.testing.assert_allclose(proj.xy_[sample], proj.reducer_.embedding_)  # the laid-out rows as fitted
    rest = np.setdiff1d(np.arange(1500), sample)
    # each placed point lands among its own group: its nearest laid-out point on the map shares it
    from sklearn.neighbors import NearestNeighbors

    near = NearestNeighbors(n_neighbors=1).fit(proj.xy_[sample]).kneighbors(proj.xy_[rest])[1][:, 0]
    assert (truth[sample][near] == truth[rest]).mean() > 0.95

    clusterer = Clusterer(min_cluster_size=20).fit(proj.cluster_space_, sample=sample)
    assert clusterer.labels_.shape == clusterer.probabilities_.shape == clusterer.outlier_scores_.shape == (1500,)
    assert adjusted_rand_score(truth[sample], clusterer.labels_[sample]) > 0.9
    assert adjusted_rand_score(truth[rest], clusterer.labels_[rest]) > 0.9
    # HDBSCAN saw the sample alone; the rest are assigned as predict assigns new points
    on_sample = Clusterer(min_cluster_size=20).fit(proj.cluster_space_[sample])
    np.testing.assert_array_equal(on_sample.labels_, clusterer.labels_[sample])
    np.testing.assert_array_equal(on_sample.predict(proj.cluster_space_[rest])[0], clusterer.labels_[rest])
    assert len(clusterer.points_) == 1500  # and later points are compared with every point

    whole = Projector(pca_dims=16, layout_rows=None).fit(x)
    assert whole.laid_out_ is None and whole.reducer_.embedding_.shape == (1500, 2)
