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
from .project import LAYOUT_ROWS, SMALL_KNN, Projector
from .schema import cluster_label

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
#: at scale: the defaults (above ``Projector.layout_rows`` images, a sample laid out and the rest
#: placed) against laying out every image
SCALE_RECIPES = {"bulk_panel": DEFAULT_RECIPE, "every image": {"projector": {"layout_rows": None}, "clusterer": {}}}


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


def _warm_up(embeddings: np.ndarray, recipe: dict, seed: Optional[int]) -> None:
    """Map and cluster a 4,500-row subset with ``recipe``, so that numba's compilation is not
    timed; a recipe that lays out a sample above ``layout_rows`` does so here too (its placement
    compiles as well)."""
    rng = np.random.default_rng(0)
    warm = embeddings[rng.choice(len(embeddings), size=min(len(embeddings), 4500), replace=False)]
    settings = {"seed": seed, **recipe["projector"]}
    if settings.get("layout_rows", LAYOUT_ROWS) and len(warm) > 2 * SMALL_KNN:
        settings["layout_rows"] = len(warm) // 2
    projector = Projector(**settings).fit(warm)
    Clusterer(**recipe["clusterer"]).fit(projector.cluster_space_, sample=projector.laid_out_)


def evaluate_recipes(
    embeddings: np.ndarray, truth: np.ndarray, recipes: Optional[dict] = None, seed: Optional[int] = 42
) -> list[dict]:
    """One row per recipe: name, ARI, NMI, clusters, noise share, seconds and cpu_seconds (map +
    clusters, after a warm-up on a subset so that numba's compile time is not counted; CPU
    time, summed over threads, is the steadier figure on a shared machine)."""
    rows = []
    for name, recipe in (recipes or RECIPES).items():
        _warm_up(embeddings, recipe, seed)  # numba compiles first: no recipe's time includes the JIT
        start, cpu = time.perf_counter(), time.process_time()
        projector = Projector(**{"seed": seed, **recipe["projector"]}).fit(embeddings)
        clusterer = Clusterer(**recipe["clusterer"]).fit(projector.cluster_space_, sample=projector.laid_out_)
        seconds = time.perf_counter() - start
        rows.append({"recipe": name, **score(truth, clusterer.labels_), "seconds": round(seconds, 2),
                     "cpu_seconds": round(time.process_time() - cpu, 2),
                     "n": int(len(embeddings)), "labels": clusterer.labels_})
    return rows


def jittered(embeddings: np.ndarray, truth: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` rows: the real embeddings, then copies of random ones with Gaussian noise of half
    the median nearest-neighbour distance (each copy keeps its original's folder)."""
    if n <= len(embeddings):
        pick = np.random.default_rng(seed).choice(len(embeddings), n, replace=False)
        return embeddings[pick], truth[pick]
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(seed)
    sample = embeddings[rng.choice(len(embeddings), min(2000, len(embeddings)), replace=False)]
    nn = NearestNeighbors(n_neighbors=2).fit(sample).kneighbors(sample)[0][:, 1]
    sigma = 0.5 * float(np.median(nn)) / np.sqrt(embeddings.shape[1])
    extra = rng.integers(0, len(embeddings), n - len(embeddings))
    out = np.empty((n, embeddings.shape[1]), dtype=np.float32)
    out[: len(embeddings)] = embeddings
    for start in range(0, len(extra), 65_536):  # float32 noise, a block at a time (1M × 1280 in float64: 10 GB)
        block = extra[start:start + 65_536]
        noise = rng.standard_normal((len(block), embeddings.shape[1]), dtype=np.float32)
        out[len(embeddings) + start:len(embeddings) + start + len(block)] = embeddings[block] + sigma * noise
    return out, np.concatenate([truth, truth[extra]])


def scale_recipes(embeddings: np.ndarray, truth: np.ndarray, points: int, orders: int = 1,
                  recipes: Optional[dict] = None, seed: Optional[int] = 42, report=print) -> list[dict]:
    """Map + clusters of ``points`` rows (the real ``embeddings`` and :func:`jittered` copies),
    per recipe and order: each order its own copies, in its own row order. One row each:
    recipe, order, map and cluster seconds, and ARI, NMI, clusters and noise on the real rows
    alone (the copies form tight knots of ~``points / len(embeddings)`` that mean nothing).
    ``report(row)`` is called as each row is done. numba compiles on a subset first."""
    recipes = recipes or SCALE_RECIPES
    for recipe in recipes.values():
        _warm_up(embeddings, recipe, seed)
    rows = []
    for order in range(orders):
        x, t = jittered(embeddings, truth, points, seed=order)
        real = np.arange(len(x)) < min(len(embeddings), points)
        if order:  # order 0 keeps the rows as drawn (no second copy of them)
            perm = np.random.default_rng(order).permutation(len(x))
            x, t, real = x[perm], t[perm], real[perm]
        for name, recipe in recipes.items():
            start = time.perf_counter()
            projector = Projector(**{"seed": seed, **recipe["projector"]}).fit(x)
            mapped = time.perf_counter()
            clusterer = Clusterer(**recipe["clusterer"]).fit(projector.cluster_space_, sample=projector.laid_out_)
            done = time.perf_counter()
            row = {"recipe": name, "order": order, "n": len(x), "map_seconds": round(mapped - start, 1),
                   "cluster_seconds": round(done - mapped, 1), "seconds": round(done - start, 1),
                   **score(t[real], clusterer.labels_[real])}
            rows.append(row)
            report(row)
        del x
    return rows


def knn_ceiling(embeddings: np.ndarray, truth: np.ndarray, k: int = 10, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a cosine k-nearest-neighbour vote with every true label known:
    the most any labelling from these embeddings can hope for."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    knn = KNeighborsClassifier(n_neighbors=k, metric="cosine", algorithm="brute")
    return float(cross_val_score(knn, embeddings, truth.astype(str), cv=split).mean())


def simulate_labelling(
    space: np.ndarray, truth: np.ndarray, clusters: np.ndarray, *, learn: bool, actions: int = 30,
    page: int = 50, method: str = "logistic",
) -> list[dict]:
    """A simulated person labelling a collection, one decision per action; returns one row per
    action (the first before any): ``action``, ``kind``, ``accuracy`` (labels equal to
    ``truth``, over all images) and ``corrected`` (how many images of a page the person had
    to correct rather than accept).

    Labels start as the clusters' neutral names (never right). An action is one decision in
    the dashboard:

    - *name a cluster*: every member gets the name most of its members have (the largest cluster
      not named yet; with learning, only while a cluster's name is one not given before);
    - with ``learn``, *a page of suggestions*: the ``page`` images whose prediction is least
      certain, each accepted or corrected to its true name.

    With ``learn``, after each action a :class:`~.learn.LabelLearner` (``method``) trained on the
    labels given so far predicts every image not labelled by the person (``space``: the
    learner's vectors, :class:`~.learn.Reduced`).
    """
    from .learn import LabelLearner, least_certain

    truth = truth.astype(str)
    labels = np.array([cluster_label(c) for c in clusters], dtype=object)
    person = np.zeros(len(truth), dtype=bool)
    confidence = np.zeros(len(truth), dtype=np.float32)
    ids, sizes = np.unique(clusters[clusters >= 0], return_counts=True)
    unnamed = [int(c) for c in ids[np.argsort(-sizes, kind="stable")]]
    majority = {}
    for c in unnamed:
        names, counts = np.unique(truth[clusters == c], return_counts=True)
        majority[c] = names[counts.argmax()]
    rows = [{"action": 0, "kind": "start", "accuracy": float(np.mean(labels == truth)), "corrected": 0}]
    for action in range(1, actions + 1):
        given = set(labels[person].tolist())
        corrected = 0
        fresh = [c for c in unnamed if majority[c] not in given] if learn else unnamed
        if fresh:
            c = fresh[0]
            unnamed.remove(c)
            members = clusters == c
            labels[members], person[members] = majority[c], True
            kind = "name a cluster"
        elif learn and (~person).any():
            shown = least_certain(confidence, np.flatnonzero(~person))[:page]
            corrected = int(np.sum(labels[shown] != truth[shown]))
            labels[shown], person[shown] = truth[shown], True
            kind = "a page of suggestions"
        else:
            kind = "nothing left"
        if learn and person.any() and (~person).any():
            learner = LabelLearner(method=method).fit(space[person], labels[person])
            predicted, confidence[~person] = learner.predict(space[~person])
            labels[~person] = predicted
        rows.append({"action": action, "kind": kind, "accuracy": float(np.mean(labels == truth)),
                     "corrected": corrected})
    return rows


def actions_to_reach(curve: Sequence[dict], accuracy: float) -> Optional[int]:
    """The first action after which the curve's accuracy is at least ``accuracy`` (None: never)."""
    return next((row["action"] for row in curve if row["accuracy"] >= accuracy), None)


def evaluate_labelling(
    embeddings: np.ndarray, truth: np.ndarray, clusters: np.ndarray, actions: int = 30, page: int = 50,
    methods: Sequence[str] = ("logistic",),
) -> dict:
    """The labelling loop measured against known groups: the kNN ceiling, the curve of naming
    clusters alone, and one curve per learning ``method`` (clusters + learning + suggestions),
    with the actions each needs to reach 0.8 and 0.9 × the ceiling and the seconds per retrain.

    >>> report = evaluate_labelling(embeddings, folder_truth(paths), clusters)
    >>> report["ceiling"], report["approaches"]["clusters alone"]["to_0.8"]
    """
    from .learn import Reduced

    ceiling = knn_ceiling(embeddings, truth)
    space = Reduced.of(embeddings).vectors
    runs = {"clusters alone": dict(learn=False)}
    runs.update({f"clusters + learning ({m})": dict(learn=True, method=m) for m in methods})
    approaches = {}
    for name, how in runs.items():
        start = time.perf_counter()
        curve = simulate_labelling(space, truth, clusters, actions=actions, page=page, **how)
        approaches[name] = {
            "curve": curve, "final": curve[-1]["accuracy"],
            "to_0.8": actions_to_reach(curve, 0.8 * ceiling), "to_0.9": actions_to_reach(curve, 0.9 * ceiling),
            "seconds_per_action": round((time.perf_counter() - start) / actions, 3),
        }
    return {"n": int(len(truth)), "classes": int(len(set(truth.tolist()))), "ceiling": ceiling,
            "actions": actions, "page": page, "approaches": approaches}
