"""Are suggested cluster names right? Precision by agreement threshold (printed, never asserted).

    python -m benchmarks.bench_names --folder data/fmnist5k --folder data/openclipart --seeds 5

Per folder (first-level subfolders are the true groups): the images are embedded once (the
embedding cache is used), then mapped and clustered with bulk_panel's defaults for each of
``--seeds`` map seeds (42, 43, …), and every cluster's suggestion is checked against its
majority folder with WordNet (``compute.names.name_match_rate``: a match when the suggestion's
class, or one of its hypernyms, is a word of the folder's name; needs Debian's wordnet-base).
The clusters of all seeds are pooled: for each agreement threshold, how many suggestions reach
it (per run, and as a share of all clusters), how many of those match (the precision), and the
share of clustered images they cover. ``-o NAME`` also writes ``NAME.json``.

``bulk-panel evaluate FOLDER`` prints the same table for one map (its ``--seed``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path



def measure(folder: Path, seeds: int, thresholds, cache_dir=None) -> dict:
    """The pooled suggestions of ``seeds`` maps of ``folder``, and their precision per threshold."""
    from bulk_panel.compute.cluster import Clusterer
    from bulk_panel.compute.evaluate import folder_truth
    from bulk_panel.compute.names import name_match_rate, precision_by_agreement
    from bulk_panel.compute.pipeline import Pipeline
    from bulk_panel.compute.project import Projector

    pipeline = Pipeline(root=str(folder), cache_dir=cache_dir)
    start = time.perf_counter()
    pipeline.run(until="embed")
    embed_s = time.perf_counter() - start
    emb = pipeline.embedder
    if emb.classes_ is None:
        raise SystemExit(f"{emb.model} has no ImageNet head: no suggestions to measure")
    truth = folder_truth(emb.paths_)
    pairs, runs = [], []
    for k in range(seeds):
        seed = 42 + k
        labels = Clusterer().fit(Projector(seed=seed).fit(emb.embeddings_).cluster_space_).labels_
        result = name_match_rate(labels, emb.classes_, truth, thresholds=thresholds)
        runs.append({"seed": seed, "clusters": result["clusters"], "matched": result["matched"]})
        pairs += [{**p, "seed": seed} for p in result["pairs"]]
    return {"folder": str(folder), "images": len(truth), "folders": len(set(truth)), "model": emb.model,
            "embed_seconds": round(embed_s, 1), "runs": runs, "pairs": pairs,
            "by_agreement": precision_by_agreement(pairs, thresholds)}


def table(report: dict) -> str:
    """A Markdown table of one folder's precision by agreement threshold."""
    runs = len(report["runs"])
    lines = [f"{report['folder']}: {report['images']:,} images in {report['folders']} folders, "
             f"{runs} maps, {len(report['pairs'])} clusters in all",
             "", "| agreement ≥ | suggestions (per map) | share of clusters | precision | clustered images |",
             "|---|---|---|---|---|"]
    for row in report["by_agreement"]:
        precision = "—" if row["precision"] is None else f"{row['precision']:.2f} ({row['matched']}/{row['clusters']})"
        lines.append(f"| {100 * row['min_agreement']:.0f}% | {row['clusters']} ({row['clusters'] / runs:.1f}) | "
                     f"{100 * row['share']:.0f}% | {precision} | {100 * row['images']:.0f}% |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", action="append", required=True, help="an image folder (repeatable)")
    parser.add_argument("--seeds", type=int, default=5, help="maps per folder (default: 5)")
    parser.add_argument("--thresholds", default="0,0.3,0.5,0.7", help="agreement thresholds (default: 0,0.3,0.5,0.7)")
    parser.add_argument("--cache-dir", default=None, help="embedding cache (default: bulk_panel's)")
    parser.add_argument("-o", "--output", default=None, help="also write OUTPUT.json")
    args = parser.parse_args(argv)
    from bulk_panel.compute.names import WORDNET_NOUNS

    if not WORDNET_NOUNS.exists():
        raise SystemExit(f"{WORDNET_NOUNS} is missing: apt-get install wordnet-base")
    thresholds = [float(t) for t in args.thresholds.split(",")]
    reports = []
    for folder in args.folder:
        report = measure(Path(folder), args.seeds, thresholds, args.cache_dir)
        reports.append(report)
        print(table(report), flush=True)
        right = [p for p in report["pairs"] if p["match"]]
        best = sorted(report["pairs"], key=lambda p: -p["agreement"])[:8]
        print("right:", "; ".join(f"{p['name']} → {p['folder']}" for p in right[:8]) or "none")
        print("highest agreement:", "; ".join(f"{p['name']} {100 * p['agreement']:.0f}% → {p['folder']}"
                                              f"{'' if p['match'] else ' ✗'}" for p in best))
        print()
    if args.output:
        Path(f"{args.output}.json").write_text(json.dumps(reports, indent=1, default=float), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
