"""Projector internals that the real-pipeline tests don't see: the sampled PCA fit, the
block-wise projection, the neighbour graph source (real PCA and UMAP, synthetic vectors)."""
import numpy as np

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


def test_maps_above_the_small_set_limit_use_a_neighbour_index_and_place_new_points():
    x = blobs(n=project.SMALL_KNN + 40)
    proj = Projector(pca_dims=16).fit(x[:-20])
    assert proj.reducer_._knn_search_index is not None  # pynndescent's graph, not exact pairs
    assert proj.cluster_space_ is proj.xy_  # one layout: the map is the clustering space
    xy, space = proj.transform(x[-20:])
    assert xy.shape == (20, 2) and np.isfinite(xy).all() and space is xy


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
