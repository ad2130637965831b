"""The whole pipeline with the real model, real UMAP and real HDBSCAN on real images."""
import shutil

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from bulk_panel import Pipeline, load_results
from bulk_panel.compute.names import read_suggestions
from bulk_panel.compute.records import cluster_label

from helpers import demo_subset, variants_folder

pytestmark = pytest.mark.slow  # the real model, UMAP and HDBSCAN


def add_bad_files(folder):
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.png").write_text("<html>not an image</html>")
    good = next(folder.glob("food/*.png")).read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "readme.txt").write_text("ignored: not an image extension")


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    folder = demo_subset(root / "images")
    add_bad_files(folder)
    cache = root / "cache"
    pipeline = Pipeline(root=folder, cache_dir=str(cache))
    pipeline.embedder.workers = 2
    pipeline.embedder.batch_size = 8
    pipeline.clusterer.min_cluster_size = 4
    results = pipeline.run()
    return pipeline, results, folder, cache


def test_results_rows_columns_and_labels(first_run):
    pipeline, results, folder, _ = first_run
    frame = results.frame
    assert len(frame) == 24
    assert frame.path.str.contains("/").all()  # relative, '/'-separated
    assert results.embeddings.shape == (24, 1280)
    assert np.isfinite(frame[["x", "y"]].to_numpy()).all()
    assert (frame.width > 0).all() and (frame.height > 0).all()
    assert ((frame.probability >= 0) & (frame.probability <= 1)).all()
    # neutral labels ('cluster N', 'noise'); each cluster's suggested name, with how many agree, in the meta
    assert (frame.label == frame.cluster.map(cluster_label)).all()
    suggestions = results.meta["suggestions"]
    assert set(suggestions) == {str(c) for c in set(frame.cluster) - {-1}}
    for key, s in suggestions.items():
        assert 0.0 <= s["agreement"] <= 1.0 and s["size"] == (frame.cluster == int(key)).sum() and s["classes"]
    assert read_suggestions(load_results(results.save(folder.parent / "r.parquet")).meta).keys() == \
        {int(k) for k in suggestions}
    assert results.cluster_coords.shape == (24, pipeline.projector.cluster_dims)
    assert results.meta["counts"]["embedded"] == 24
    assert results.meta["weights"].startswith("file:")


def test_bad_files_are_skipped_with_reasons(first_run):
    _, results, _, _ = first_run
    reasons = dict(zip(results.skipped.path, results.skipped.reason))
    assert set(reasons) == {"empty.jpg", "notes.png", "truncated.png"}
    assert "empty" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.png"]
    assert "truncated" in reasons["truncated.png"]


def test_map_and_clusters_follow_the_real_categories(first_run):
    _, results, _, _ = first_run
    truth = results.frame.path.str.split("/").str[0].to_numpy()
    # nearest neighbour in embedding space is mostly of the same category (chance: 1/3)
    sims = results.embeddings @ results.embeddings.T
    np.fill_diagonal(sims, -1)
    assert (truth[sims.argmax(1)] == truth).mean() >= 0.5


def test_umap_and_hdbscan_recover_known_groups_with_default_settings(tmp_path):
    folder = variants_folder(tmp_path / "variants")  # 3 drawings × 8 edited copies
    pipeline = Pipeline(root=folder, cache_dir=str(tmp_path / "cache"))
    pipeline.embedder.workers = 0
    results = pipeline.run()
    truth = results.frame.path.str.split("/").str[0]
    # the clusters match the groups (1.0 for ten UMAP seeds here; a shuffle scores about 0), and
    # the 2-D map keeps each group together: (nearly) every point's nearest neighbour is a sibling
    assert adjusted_rand_score(truth, results.frame.cluster) > 0.9
    xy = results.frame[["x", "y"]].to_numpy()
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert (truth.to_numpy()[d.argmin(1)] == truth.to_numpy()).mean() >= 0.9
    # labels are neutral; every cluster has its own suggested name, none 'cluster N', beside it
    assert set(results.frame.label) == {cluster_label(c) for c in results.frame.cluster}
    names = {k: s["name"] for k, s in results.meta["suggestions"].items()}
    print("suggested names:", names)
    assert set(names) == {str(c) for c in set(results.frame.cluster) - {-1}}
    assert len(set(names.values())) == len(names) and not any(n.startswith("cluster ") for n in names.values())
    pipeline.clusterer.suggest_names = False  # no suggestions; the clusters are not refitted
    assert pipeline.stale() == []
    plain = pipeline.run()
    assert set(plain.frame.label) == {cluster_label(c) for c in plain.frame.cluster}
    assert plain.meta["suggestions"] == {}


def test_changing_a_later_stage_reruns_only_that_stage(first_run):
    pipeline, results, _, _ = first_run
    xy_before = pipeline.projector.xy_.copy()
    pipeline.clusterer.min_cluster_size = 6
    assert pipeline.stale() == ["cluster"]
    again = pipeline.run()
    assert pipeline.ran_ == ["cluster"]
    np.testing.assert_array_equal(pipeline.projector.xy_, xy_before)
    assert again.meta["min_cluster_size_used"] == 6
    pipeline.projector.min_dist = 0.3
    assert pipeline.stale() == ["project", "cluster"]
    pipeline.embedder.batch_size = 4  # speed only: does not make the embeddings stale
    assert pipeline.stale() == ["project", "cluster"]
    pipeline.run()
    assert pipeline.ran_ == ["project", "cluster"]
    assert pipeline.run().meta is not None and pipeline.ran_ == []


def test_seeded_map_is_reproducible(first_run):
    pipeline, _, folder, cache = first_run
    again = Pipeline(root=folder, cache_dir=str(cache), projector=type(pipeline.projector)(**{
        k: v for k, v in pipeline.projector.param.values().items() if k != "name"
    }))
    again.embedder.workers = 0
    again.run()
    np.testing.assert_allclose(again.projector.xy_, pipeline.projector.xy_, atol=1e-4)


def test_rerun_hits_the_cache_and_renamed_files_reuse_embeddings(first_run, tmp_path):
    _, results, folder, cache = first_run
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    moved = sorted((copy / "animals").glob("*.png"))[0]
    (copy / "elsewhere").mkdir()
    moved.rename(copy / "elsewhere" / "renamed.png")
    rerun = Pipeline(root=copy, cache_dir=str(cache))
    rerun.embedder.workers = 0
    out = rerun.run()
    assert out.meta["counts"]["embedded"] == 0
    assert out.meta["counts"]["cached"] == 24
    assert "elsewhere/renamed.png" in set(out.frame.path)
    old = dict(zip(results.frame.path, results.embeddings))
    new = dict(zip(out.frame.path, out.embeddings))
    np.testing.assert_array_equal(new["elsewhere/renamed.png"], old["animals/" + moved.name])

    # adding files embeds only the new one
    extra = sorted((copy / "food").glob("*.png"))[0]
    from PIL import Image

    Image.open(extra).convert("RGB").rotate(90, expand=True).save(copy / "food" / "new.png")
    more = Pipeline(root=copy, cache_dir=str(cache))
    more.embedder.workers = 0
    assert more.run().meta["counts"]["embedded"] == 1


def test_results_file_round_trip_of_a_real_run(first_run, tmp_path):
    _, results, _, _ = first_run
    loaded = load_results(results.save(tmp_path / "r.parquet"))
    assert loaded.frame.equals(results.frame)
    np.testing.assert_array_equal(loaded.embeddings, results.embeddings)
    assert loaded.meta["params"]["clusterer"]["min_cluster_size"] == 4
    assert loaded.meta["params"]["embedder"]["model"] == "tf_efficientnet_lite0"
    docs = loaded.docs
    assert {d.path for d in docs} == set(results.frame.path)
