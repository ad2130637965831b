"""Measure clustering against known groups: bulk_panel's defaults vs the seed app's recipe.

>>> rows = evaluate_recipes(embeddings, truth)         # truth: first-level folder names
>>> rows[0]["ari"], rows[1]["ari"]

Both recipes run on the same embeddings, so only the map/cluster recipe differs.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np

from .cluster import Clusterer
from .project import Projector

#: the seed app (bulk-image-clustering): 2-D UMAP with correlation, HDBSCAN mcs 8 / ms 5, and
#: umap-learn's defaults for the rest (its epochs, 5 negative samples of weight 1, spectral start)
SEED_RECIPE = {
    "projector": {"cluster_dims": 2, "metric": "correlation", "min_dist": 0.01, "n_neighbors": 15, "pca_dims": 0,
                  "map_epochs": None, "negative_sample_rate": 5, "repulsion_strength": 1.0,
                  "init": "spectral"},
    "clusterer": {"min_cluster_size": 8, "min_samples": 5},
}
#: bulk_panel's own defaults
DEFAULT_RECIPE: dict = {"projector": {}, "clusterer": {}}
RECIPES = {"bulk_panel": DEFAULT_RECIPE, "seed": SEED_RECIPE}


def folder_truth(paths: Sequence[str]) -> np.ndarray:
    """The first-level folder of each relative path ('' for files at the top)."""
    return np.array([p.split("/", 1)[0] if "/" in p else "" for p in paths], dtype=object)


def score(truth: np.ndarray, labels: np.ndarray) -> dict:
    """ARI and NMI (noise counted as its own group, as a user sees it), clusters, noise share."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "ari": float(adjusted_rand_score(truth, labels)),
        "nmi": float(normalized_mutual_info_score(truth, labels)),
        "clusters": int(len(set(labels.tolist()) - {-1})),
        "noise": float(np.mean(labels == -1)),
    }


def evaluate_recipes(
    embeddings: np.ndarray, truth: np.ndarray, recipes: Optional[dict] = None, seed: Optional[int] = 42
) -> list[dict]:
    """One row per recipe: name, ARI, NMI, clusters, noise share, seconds and cpu_seconds (map +
    clusters, after a warm-up on a subset so that numba's compile time is not counted; CPU
    time, summed over threads, is the steadier figure on a shared machine)."""
    rows = []
    rng = np.random.default_rng(0)
    warm = embeddings[rng.choice(len(embeddings), size=min(len(embeddings), 4500), replace=False)]
    for name, recipe in (recipes or RECIPES).items():
        # compile numba code paths first, so neither recipe's time includes the JIT
        Clusterer(**recipe["clusterer"]).fit(Projector(**{"seed": seed, **recipe["projector"]}).fit(warm).cluster_space_)
        start, cpu = time.perf_counter(), time.process_time()
        projector = Projector(**{"seed": seed, **recipe["projector"]}).fit(embeddings)
        clusterer = Clusterer(**recipe["clusterer"]).fit(projector.cluster_space_)
        seconds = time.perf_counter() - start
        rows.append({"recipe": name, **score(truth, clusterer.labels_), "seconds": round(seconds, 2),
                     "cpu_seconds": round(time.process_time() - cpu, 2),
                     "n": int(len(embeddings)), "labels": clusterer.labels_})
    return rows
