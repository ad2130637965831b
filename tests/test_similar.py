"""More-like-this, duplicates and galleries on real embeddings of real images."""
import shutil

import numpy as np
import pytest
from PIL import Image

from bulk_panel import Pipeline
from bulk_panel.compute.similar import NeighbourIndex, duplicate_groups, gallery

from helpers import demo_subset

pytestmark = pytest.mark.slow  # the real pipeline's embeddings


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("similar")
    folder = demo_subset(root / "images", per_category=8)
    original = sorted((folder / "food").glob("*.png"))[2]
    shutil.copy2(original, folder / "exact-copy.png")  # byte-identical
    rgba = Image.open(original).convert("RGBA")
    rgba.resize((rgba.width * 3 // 4, rgba.height * 3 // 4)).save(folder / "near-copy.png")  # resized
    pipeline = Pipeline(root=folder, cache_dir=str(root / "cache"))
    pipeline.embedder.workers = 0
    pipeline.clusterer.min_cluster_size = 4
    return pipeline.run(), "food/" + original.name


def row_of(results, path):
    return int(np.flatnonzero(results.frame.path.to_numpy() == path)[0])


def test_neighbours_of_an_image_include_its_near_copy(run):
    results, original = run
    index = NeighbourIndex(results.embeddings)
    rows, sims = index.query(row_of(results, original), k=3)
    found = set(results.frame.path.to_numpy()[rows])
    assert {"exact-copy.png", "near-copy.png"} <= found
    assert row_of(results, original) not in rows
    assert np.all(np.diff(sims) <= 1e-6)  # nearest first
    # the same answer through the approximate (pynndescent) index
    approx = NeighbourIndex(results.embeddings, exact_below=0)
    rows2, _ = approx.query(row_of(results, original), k=3)
    assert {"exact-copy.png", "near-copy.png"} <= set(results.frame.path.to_numpy()[rows2])


def test_exact_and_near_duplicates_are_grouped_with_one_kept(run):
    results, original = run
    groups = duplicate_groups(results.frame, results.embeddings, threshold=0.9)
    mine = groups[groups.group == groups.loc[groups.path == original, "group"].iloc[0]]
    assert set(mine.path) == {original, "exact-copy.png", "near-copy.png"}
    assert mine.keep.sum() == 1
    kinds = dict(zip(mine.path, mine.kind))
    assert kinds["near-copy.png"] == "near"
    assert {kinds[original], kinds["exact-copy.png"]} == {"exact"}
    assert (mine.similarity > 0.9).all()
    # exact duplicates only (no threshold): just the byte-identical pair
    exact = duplicate_groups(results.frame, threshold=None)
    assert sorted(exact.path) == sorted([original, "exact-copy.png"])
    assert set(exact.kind) == {"exact"}


def test_gallery_lists_members_of_its_cluster_only(run):
    results, _ = run
    frame = results.frame
    for label in frame.label.unique():  # whichever clusters this machine's floats made
        shown = gallery(frame, label, k=5)
        assert len(shown) == min(5, (frame.label == label).sum()), label
        assert (shown.label == label).all()
        assert shown.probability.is_monotonic_decreasing
