"""Placing new points in clusters: ``Clusterer.predict`` against hdbscan's ``approximate_predict``
(printed, never asserted).

    python -m benchmarks.bench_predict [--results results.parquet] [--sizes 10000 60000] [--new 1000]

The 2-D map: the ``x``, ``y`` columns of a saved results file (``--results``), or else a seeded
Gaussian mixture of 60k points (10 blobs of differing spread and size, 2 % uniform background).
Prints, each timing the best of ``--repeats``:

1. HDBSCAN's fit (bulk_panel's settings) without and with ``prediction_data=True``, and
   ``Clusterer.fit`` (the fit plus the clusters' birth distances), at each size;
2. the time to place ``--new`` new points: ``Clusterer.predict`` (which builds its neighbour
   index of the fitted points on each call) against ``approximate_predict``;
3. on the largest size, fitted on 90 % and placing the other 10 %: how often the two give the
   same cluster (or both noise), with and without the saved birth distances, and the ARI of
   each against those points' clusters in a fit on all the points;
4. the pickled HDBSCAN model with prediction data (what ``approximate_predict`` needs beside
   the saved map) against what the saved map keeps for its clusters.
"""
from __future__ import annotations

import argparse
import os
import pickle
import platform
import time

import numpy as np


def mixture(n: int = 60_000, blobs: int = 10, background: float = 0.02, seed: int = 0) -> np.ndarray:
    """``n`` 2-D points: ``blobs`` Gaussian blobs of differing spread (0.3-2.5) and size (weights
    1-6), centres in a 60 × 60 square, plus a ``background`` share spread uniformly over it."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-30, 30, (blobs, 2))
    spread = rng.uniform(0.3, 2.5, blobs)
    weights = rng.uniform(1, 6, blobs)
    n_bg = int(round(background * n))
    which = rng.choice(blobs, n - n_bg, p=weights / weights.sum())
    points = centres[which] + rng.normal(size=(n - n_bg, 2)) * spread[which, None]
    points = np.vstack([points, rng.uniform(-35, 35, (n_bg, 2))])
    return points[rng.permutation(n)].astype(np.float32)


def map_points(results: str | None, n: int) -> tuple[np.ndarray, str]:
    """The map to measure on, and where it came from."""
    if results:
        import pandas as pd

        xy = pd.read_parquet(results, columns=["x", "y"]).to_numpy(np.float32)
        return xy, f"{results} ({len(xy):,} points)"
    return mixture(n), f"Gaussian mixture, {n:,} points, 10 blobs"


def best(fn, repeats: int) -> tuple[float, object]:
    """The least wall time of ``repeats`` calls, and the last call's result."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def fit_model(points: np.ndarray, prediction_data: bool):
    """hdbscan's model with bulk_panel's settings (``Clusterer.hdbscan_options``)."""
    import hdbscan

    from bulk_panel.compute.cluster import Clusterer

    options = Clusterer().hdbscan_options(len(points), points.shape[1])
    return hdbscan.HDBSCAN(**options, prediction_data=prediction_data).fit(points.astype(np.float64))


def ours(model, points: np.ndarray, births: bool = True):
    """A ``Clusterer`` restored from ``model``'s results, as from a saved map."""
    from bulk_panel.compute.cluster import Clusterer, birth_distances
    from bulk_panel.compute.upstream import condensed_tree

    labels = model.labels_.astype(np.int64)
    return Clusterer().restore(
        points, labels, np.nan_to_num(model.probabilities_), np.nan_to_num(model.outlier_scores_),
        model.min_cluster_size, birth_distances(condensed_tree(model), labels) if births else None,
    )


def same(a: np.ndarray, b: np.ndarray) -> float:
    """Share of points with the same cluster (both noise counts as the same)."""
    return float(np.mean(a == b))


def measure(points: np.ndarray, sizes: list[int], new: int, repeats: int) -> dict:
    import hdbscan
    from sklearn.metrics import adjusted_rand_score

    from bulk_panel.compute.cluster import Clusterer

    rng = np.random.default_rng(1)
    report: dict = {"fit": [], "predict": [], "held_out": {}, "pickle": {}}
    for n in sizes:
        x = points[np.sort(rng.choice(len(points), n, replace=False))] if n < len(points) else points
        plain, _ = best(lambda: fit_model(x, False), repeats)
        with_data, model = best(lambda: fit_model(x, True), repeats)
        clusterer, _ = best(lambda: Clusterer().fit(x), repeats)
        report["fit"].append({"n": n, "plain": plain, "prediction_data": with_data, "clusterer": clusterer,
                              "clusters": int(model.labels_.max()) + 1})
        fresh = mixture(new, seed=7) if new else x[:0]
        restored = ours(model, x)
        t_ours, _ = best(lambda: restored.predict(fresh), repeats)
        t_lib, _ = best(lambda: hdbscan.approximate_predict(model, fresh), repeats)
        report["predict"].append({"n": n, "new": len(fresh), "ours": t_ours, "approximate_predict": t_lib})
        if n == max(sizes):
            report["pickle"] = {
                "n": n,
                "with_prediction_data": len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)),
                "without": len(pickle.dumps(fit_model(x, False), protocol=pickle.HIGHEST_PROTOCOL)),
                # what the saved map keeps for predict: points, labels, probabilities, scores, births
                "saved_map_fields": sum(np.asarray(a).nbytes for a in (
                    restored.points_, restored.labels_, restored.probabilities_, restored.outlier_scores_,
                    restored.birth_distances_)),
            }
            report["held_out"] = held_out(x, adjusted_rand_score)
    return report


def held_out(x: np.ndarray, ari) -> dict:
    """Fit on 90 %, place the other 10 % both ways; compare with a fit on all the points."""
    import hdbscan

    rng = np.random.default_rng(2)
    test = np.zeros(len(x), bool)
    test[rng.choice(len(x), len(x) // 10, replace=False)] = True
    model = fit_model(x[~test], True)
    lib = hdbscan.approximate_predict(model, x[test])[0]
    mine = ours(model, x[~test]).predict(x[test])[0]
    without = ours(model, x[~test], births=False).predict(x[test])[0]
    full = fit_model(x, False).labels_
    return {
        "fitted": int((~test).sum()), "placed": int(test.sum()),
        "agreement": same(mine, lib), "agreement_without_births": same(without, lib),
        "noise_ours": float(np.mean(mine < 0)), "noise_lib": float(np.mean(lib < 0)),
        "ari_ours": ari(full[test], mine), "ari_lib": ari(full[test], lib),
        "ari_without_births": ari(full[test], without),
        "ari_refit_on_fitted": ari(full[~test], model.labels_),  # how much the 90 % fit itself moves
    }


def markdown(report: dict, source: str) -> str:
    lines = [f"map: {source}; machine: {platform.machine()}, {os.cpu_count()} cores", "",
             "| points | HDBSCAN fit | with prediction_data | Clusterer.fit | clusters |", "|---|---|---|---|---|"]
    for r in report["fit"]:
        lines.append(f"| {r['n']:,} | {r['plain']:.2f} s | {r['prediction_data']:.2f} s "
                     f"({r['prediction_data'] / r['plain']:.2f}×) | {r['clusterer']:.2f} s | {r['clusters']} |")
    lines += ["", "| fitted points | new points | Clusterer.predict | approximate_predict |", "|---|---|---|---|"]
    for r in report["predict"]:
        lines.append(f"| {r['n']:,} | {r['new']:,} | {1000 * r['ours']:.0f} ms | {1000 * r['approximate_predict']:.0f} ms |")
    h = report["held_out"]
    if h:
        lines += ["", f"held out: fitted on {h['fitted']:,}, placed {h['placed']:,}",
                  f"- same cluster as approximate_predict (or both noise): {h['agreement']:.4f} "
                  f"(restored without birth distances: {h['agreement_without_births']:.4f})",
                  f"- noise among the placed points: ours {h['noise_ours']:.4f}, approximate_predict {h['noise_lib']:.4f}",
                  f"- ARI against a fit on all points: ours {h['ari_ours']:.4f}, approximate_predict {h['ari_lib']:.4f}, "
                  f"ours without birth distances {h['ari_without_births']:.4f} "
                  f"(the 90 % fit's own points: {h['ari_refit_on_fitted']:.4f})"]
    p = report["pickle"]
    if p:
        lines += ["", f"pickled HDBSCAN model at {p['n']:,} points: {p['with_prediction_data'] / 2**20:.1f} MiB with "
                  f"prediction data, {p['without'] / 2**20:.1f} MiB without; the saved map's cluster fields "
                  f"(points, labels, probabilities, scores, births): {p['saved_map_fields'] / 2**20:.1f} MiB"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_predict", description=__doc__.split("\n")[0])
    parser.add_argument("--results", help="a saved results file: its x, y columns are the map (default: a Gaussian mixture)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 60_000], help="fitted points (default: 10000 60000)")
    parser.add_argument("--new", type=int, default=1000, help="new points to place (default: 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="timings: best of this many (default: 3)")
    args = parser.parse_args(argv)
    points, source = map_points(args.results, max(args.sizes))
    sizes = sorted(min(n, len(points)) for n in args.sizes)
    print(markdown(measure(points, sizes, args.new, args.repeats), source))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
