"""Incremental runs: new images are placed into the saved map (real model, UMAP, HDBSCAN)."""
import logging
import shutil
import time

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from bulk_panel import Pipeline
from bulk_panel.compute.cluster import Clusterer
from bulk_panel.compute.project import Projector

from helpers import demo_subset


CATEGORIES = ("animals", "food", "transportation", "buildings")


def near_copy(src, dest) -> None:
    """A slightly cropped, slightly brighter copy of ``src``."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    img = ImageEnhance.Brightness(img.crop((2, 2, w - 2, h - 2))).enhance(1.04)
    img.save(dest)


def make_pipeline(folder, cache, embedder, **params) -> Pipeline:
    pipeline = Pipeline(root=folder, cache_dir=str(cache), embedder=embedder, **params)
    pipeline.clusterer.suggest_names = False
    return pipeline


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, embedder):
    """One full run on 80 real images; a pristine copy of the folder and cache to restore."""
    root = tmp_path_factory.mktemp("incremental")
    folder = demo_subset(root / "images", categories=CATEGORIES, per_category=20)
    cache = root / "cache"
    start = time.perf_counter()
    results = make_pipeline(folder, cache, embedder).run()
    seconds = time.perf_counter() - start
    shutil.copytree(folder, root / "images0")
    shutil.copytree(cache, root / "cache0")
    return {"root": root, "folder": folder, "cache": cache, "results": results, "seconds": seconds}


@pytest.fixture
def setup(fitted):
    """The folder and cache as the first run left them (earlier tests may have changed them)."""
    root = fitted["root"]
    for name in ("images", "cache"):
        shutil.rmtree(root / name)
        shutil.copytree(root / f"{name}0", root / name)
    return fitted


def by_path(results, columns):
    return results.frame.set_index("path")[columns]


def test_new_images_are_placed_without_moving_the_old_ones(setup, embedder):
    folder, cache, first = setup["folder"], setup["cache"], setup["results"]
    assert first.meta["map"]["mode"] == "fitted"
    originals = [sorted((folder / c).glob("*.png"))[3] for c in CATEGORIES]
    for src in originals:
        near_copy(src, src.with_name("copy-" + src.name))

    start = time.perf_counter()
    again = make_pipeline(folder, cache, embedder).run()  # a new Pipeline, as a new process would
    seconds = time.perf_counter() - start
    print(f"\nrerun after +{len(originals)} images: {seconds:.1f} s vs first run {setup['seconds']:.1f} s "
          f"(ratio {seconds / setup['seconds']:.3f})")

    assert again.meta["counts"]["embedded"] == 4 and again.meta["counts"]["cached"] == 80
    assert again.meta["map"] == {"mode": "placed", "fitted_on": 80, "new": 4, "placed": 4}
    old = by_path(first, ["x", "y", "cluster", "probability"])
    new = by_path(again, ["x", "y", "cluster", "probability"])
    assert len(new) == 84
    np.testing.assert_array_equal(new.loc[old.index].to_numpy(), old.to_numpy())  # nothing moved

    # each near-copy lands in its original's neighbourhood: UMAP places a new point among its
    # 15 nearest (of 80); a random place would rank the original ~40th on average and put all
    # four within the nearest 20 once in 250 tries. A copy takes its original's cluster or, where
    # it lands past that cluster's birth distance (how far it lands moves with the machine's
    # floating point: 3 of 4 kept it on one machine, 2 on another), becomes noise; never another.
    xy = old[["x", "y"]].to_numpy()
    ranks, same_cluster = [], 0
    for src in originals:
        rel = str(src.relative_to(folder))
        point = new.loc[rel.replace(src.name, "copy-" + src.name)]
        order = np.argsort(((xy - point[["x", "y"]].to_numpy(float)) ** 2).sum(1))
        ranks.append(int(np.flatnonzero(old.index[order] == rel)[0]))
        same_cluster += point["cluster"] == old.loc[rel, "cluster"]
        assert point["cluster"] in (old.loc[rel, "cluster"], -1), rel
    print("rank of each original among the points nearest its copy:", ranks)
    assert max(ranks) < 20 and np.mean(ranks) < 12
    assert same_cluster >= 2
    assert again.cluster_coords.shape == (84, Projector().cluster_dims)


def test_deleted_images_drop_out_and_the_rest_stay(setup, embedder):
    folder, cache, first = setup["folder"], setup["cache"], setup["results"]
    gone = sorted((folder / "food").glob("*.png"))[:2]
    for path in gone:
        path.unlink()
    again = make_pipeline(folder, cache, embedder).run()
    assert again.meta["map"]["mode"] == "placed" and again.meta["map"]["new"] == 0
    assert len(again.frame) == 78
    assert not {str(p.relative_to(folder)) for p in gone} & set(again.frame.path)
    old = by_path(first, ["x", "y", "cluster"])
    new = by_path(again, ["x", "y", "cluster"])
    np.testing.assert_array_equal(new.to_numpy(), old.loc[new.index].to_numpy())


def test_many_new_images_or_refit_flag_refit_the_map(setup, embedder):
    folder, cache = setup["folder"], setup["cache"]
    extra = demo_subset(setup["root"] / "extra", categories=("people",), per_category=9)
    shutil.copytree(extra / "people", folder / "people")  # 9 of 89 new: over 10%
    again = make_pipeline(folder, cache, embedder).run()
    assert again.meta["map"] == {"mode": "fitted", "fitted_on": 89, "new": 0}

    near_copy(next((folder / "food").glob("*.png")), folder / "food" / "copy.png")
    assert make_pipeline(folder, cache, embedder).run().meta["map"]["mode"] == "placed"
    forced = make_pipeline(folder, cache, embedder, incremental=False).run()
    assert forced.meta["map"]["mode"] == "fitted"


def test_placements_add_up_towards_a_refit(setup, embedder):
    folder, cache = setup["folder"], setup["cache"]
    pipeline = make_pipeline(folder, cache, embedder)
    sources = sorted((folder / "animals").glob("*.png"))
    modes = []
    for i in range(3):  # 3 × 3 new images: 6 of 80 placed, then 9 > 8 → refit
        for src in sources[3 * i : 3 * i + 3]:
            near_copy(src, src.with_name("copy-" + src.name))
        modes.append(pipeline.run(refresh=True).meta["map"]["mode"])
    assert modes == ["placed", "placed", "fitted"]


def test_a_damaged_map_file_means_a_full_refit(setup, embedder, caplog):
    folder, cache = setup["folder"], setup["cache"]
    (map_file,) = (cache / "maps").glob("*.pkl")
    map_file.write_bytes(b"not a pickle")
    with caplog.at_level(logging.INFO, logger="bulk_panel"):
        again = make_pipeline(folder, cache, embedder).run()
    assert again.meta["map"]["mode"] == "fitted"
    warning = [r.getMessage() for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(warning) == 1 and str(map_file) in warning[0] and "\n" not in warning[0]
    assert make_pipeline(folder, cache, embedder).run().meta["map"]["mode"] == "placed"  # rewritten

    map_file.unlink()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="bulk_panel"):
        assert make_pipeline(folder, cache, embedder).run().meta["map"]["mode"] == "fitted"
    assert any("no saved map" in r.getMessage() for r in caplog.records)


def test_changed_cluster_settings_keep_the_map_and_recluster(setup, embedder):
    folder, cache, first = setup["folder"], setup["cache"], setup["results"]
    near_copy(next((folder / "food").glob("*.png")), folder / "food" / "copy.png")
    pipeline = make_pipeline(folder, cache, embedder)
    pipeline.clusterer.min_cluster_size = 12
    again = pipeline.run()
    assert again.meta["map"]["mode"] == "placed"
    assert again.meta["min_cluster_size_used"] == 12
    old = by_path(first, ["x", "y"])
    np.testing.assert_array_equal(by_path(again, ["x", "y"]).loc[old.index].to_numpy(), old.to_numpy())
    assert (again.frame.cluster.value_counts().drop(-1, errors="ignore") >= 12).all()


def test_clusterer_predict_joins_near_points_and_leaves_far_ones_as_noise():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(c, 0.3, size=(60, 3)) for c in ((0, 0, 0), (6, 0, 0), (0, 6, 0))])
    clusterer = Clusterer(min_cluster_size=10).fit(blobs)
    assert len(set(clusterer.labels_) - {-1}) == 3
    labels, probabilities, scores = clusterer.predict(np.array([[6.0, 0.0, 0.0], [0, 0, 0.05], [30.0, 30.0, 30.0]]))
    assert labels[0] == np.bincount(clusterer.labels_[60:120][clusterer.labels_[60:120] >= 0]).argmax()
    assert labels[1] == clusterer.labels_[np.argmin(np.linalg.norm(blobs - [0, 0, 0.05], axis=1))]
    assert labels[2] == -1 and probabilities[2] == 0 and scores[2] > 0.9
    assert (probabilities[:2] > 0).all()

    # the limit is each cluster's birth distance in HDBSCAN's tree (the blobs, 6 apart, split
    # near 4.4), not its members' largest core distance (< 0.9): a point 1.5 out of the first
    # blob still joins it, as HDBSCAN's approximate_predict would have it
    first = clusterer.labels_[np.argmin(np.linalg.norm(blobs, axis=1))]
    births = clusterer.birth_distances_
    assert len(births) == 3 and (births > 3).all() and (births < 6).all()
    assert clusterer.predict(np.array([[-1.5, 0.0, 0.0]]))[0][0] == first
    saved = [clusterer.points_, clusterer.labels_, clusterer.probabilities_, clusterer.outlier_scores_, 10]
    assert Clusterer().restore(*saved, births).predict(np.array([[-1.5, 0.0, 0.0]]))[0][0] == first
    # a map saved without them (an older file) keeps the stricter rule
    assert Clusterer().restore(*saved).predict(np.array([[-1.5, 0.0, 0.0]]))[0][0] == -1


def test_projector_transform_needs_a_fit():
    with pytest.raises(ValueError, match="fit it first"):
        Projector().transform(np.ones((2, 8), np.float32))
