"""`bulk-panel evaluate`: its numbers equal a direct scikit-learn computation."""
import json
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from bulk_panel.compute.cluster import Clusterer
from bulk_panel.compute.embed import Embedder
from bulk_panel.compute.evaluate import SEED_RECIPE, folder_truth
from bulk_panel.compute.project import Projector

from helpers import demo_subset, variants_folder



def test_folder_truth():
    assert folder_truth(["a/x.png", "b/c/y.png", "z.png"]).tolist() == ["a", "b", ""]


@pytest.mark.slow
def test_evaluate_cli_matches_sklearn(tmp_path, cache_dir):
    folder = variants_folder(tmp_path / "v", sources=3, per_source=8)
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "evaluate", str(folder), "--json", "--workers", "0"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = {r["recipe"]: r for r in report["rows"]}
    assert set(rows) == {"bulk_panel", "seed"} and report["classes"] == 3

    # recompute both recipes directly from the same (cached) embeddings
    paths = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.jpg"))
    emb = Embedder(workers=0).fit(folder, paths, cache_dir)
    assert emb.counts_["embedded"] == 0  # the CLI filled the cache
    truth = folder_truth(emb.paths_)
    for name, proj, clu in [("bulk_panel", {}, {}), ("seed", SEED_RECIPE["projector"], SEED_RECIPE["clusterer"])]:
        labels = Clusterer(**clu).fit(Projector(**proj).fit(emb.embeddings_).cluster_space_).labels_
        assert rows[name]["ari"] == adjusted_rand_score(truth, labels)
        assert rows[name]["nmi"] == normalized_mutual_info_score(truth, labels)
        assert rows[name]["clusters"] == len(set(labels) - {-1})
        assert rows[name]["noise"] == float(np.mean(labels == -1))
    assert rows["bulk_panel"]["ari"] > 0.9
    from bulk_panel.compute.names import WORDNET_NOUNS

    if WORDNET_NOUNS.exists():  # suggested names vs folders, for the default recipe's clusters
        names = report["names"]
        assert names["clusters"] == rows["bulk_panel"]["clusters"] == len(names["pairs"])
        assert 0 <= names["matched"] <= names["clusters"] and 0.0 <= names["image_rate"] <= 1.0
        assert {p["folder"] for p in names["pairs"]} <= set(truth)
        assert all(0.0 <= p["agreement"] <= 1.0 for p in names["pairs"])
        kept = [row["clusters"] for row in names["by_agreement"]]
        assert kept[0] == names["clusters"] and kept == sorted(kept, reverse=True)  # fewer as the threshold rises
        assert all(row["precision"] is None or 0.0 <= row["precision"] <= 1.0 for row in names["by_agreement"])


@pytest.mark.slow
def test_evaluate_needs_two_folders(tmp_path, cache_dir):

    demo_subset(tmp_path / "one", categories=("food",), per_category=3)
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "evaluate", str(tmp_path / "one"), "-q"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert "needs images in at least two first-level folders" in out.stderr


@pytest.mark.slow
def test_evaluate_labelling_cli(tmp_path, cache_dir):
    folder = variants_folder(tmp_path / "v", sources=3, per_source=8)
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "evaluate", str(folder), "--labelling", "--json",
                          "--actions", "4", "--page", "5", "--workers", "0"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["labelling"]
    assert report["n"] == 24 and report["classes"] == 3 and 0.0 < report["ceiling"] <= 1.0
    assert set(report["approaches"]) == {"clusters alone", "clusters + learning (logistic)", "clusters + learning (knn)"}
    for run in report["approaches"].values():
        assert [row["action"] for row in run["curve"]] == [0, 1, 2, 3, 4]
        assert all(0.0 <= row["accuracy"] <= 1.0 for row in run["curve"])
    text = subprocess.run([sys.executable, "-m", "bulk_panel", "evaluate", str(folder), "--labelling", "-q",
                           "--actions", "5", "--workers", "0"], capture_output=True, text=True)
    assert text.returncode == 0, text.stderr
    assert "kNN ceiling" in text.stdout and "clusters + learning (logistic)" in text.stdout


def test_evaluate_labelling_flags_must_be_positive(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "evaluate", str(tmp_path), "--labelling", "--page", "0"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--page must be at least 1, not 0" in out.stderr


@pytest.mark.slow
def test_bench_cli_times_both_recipes_and_scores_the_real_images(tmp_path, cache_dir):
    from bulk_panel.compute.evaluate import jittered

    folder = variants_folder(tmp_path / "v", sources=3, per_source=8)
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "bench", str(folder), "--points", "900", "--orders", "2",
                          "--layout-rows", "300", "--json", "--workers", "0"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["points"] == 900 and report["real"] == 24
    rows = {(r["recipe"], r["order"]): r for r in report["rows"]}
    assert set(rows) == {(name, order) for name in ("bulk_panel", "every image") for order in (0, 1)}
    for r in report["rows"]:
        assert r["n"] == 900 and r["map_seconds"] > 0 and abs(r["map_seconds"] + r["cluster_seconds"] - r["seconds"]) <= 0.11
    for name, mean in report["means"].items():
        assert mean["ari"] == pytest.approx(np.mean([rows[name, o]["ari"] for o in (0, 1)]))

    # order 0 of "every image", recomputed: the real images come first, and only they are scored
    paths = sorted(str(p.relative_to(folder)) for p in folder.rglob("*.jpg"))
    emb = Embedder(workers=0).fit(folder, paths, cache_dir)
    truth = folder_truth(emb.paths_)
    x, t = jittered(emb.embeddings_, truth, 900, seed=0)
    assert (t[:24] == truth).all()
    labels = Clusterer().fit(Projector(layout_rows=None).fit(x).cluster_space_).labels_
    assert rows["every image", 0]["ari"] == adjusted_rand_score(truth, labels[:24])
    assert rows["every image", 0]["clusters"] == len(set(labels[:24]) - {-1})


def test_bench_cli_refuses_too_few_points(tmp_path):
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "bench", str(tmp_path), "--points", "1"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "--points must be at least 2, not 1" in out.stderr
