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
