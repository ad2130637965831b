"""Benchmark: ratios against baselines measured in the same run (``python -m bulk_panel.bench``).

    python -m bulk_panel.bench --folder /data/fashion-mnist --folder /data/openclipart -o bench

writes ``bench.md`` and ``bench.json``. Rows (each a ratio, since this machine's absolute
speed varies):

1. embedding: pipeline images/s on a folder (fresh cache: read, hash, decode, forward,
   cache) ÷ the bare model forward on the same images already decoded into tensors;
2. map + clusters: bulk_panel's defaults vs the seed app's recipe on the same embeddings
   (time ratio, ARI, NMI) — only for folders whose first-level subfolders are classes;
3. cached rerun: a second pipeline run on the same folder ÷ the first.

Dashboard figures (page load, box-select → table, re-render) come from
``bulk_panel.bench_ui``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path



def bare_forward_rate(embedder, root: Path, paths: list[str], limit: int = 256) -> float:
    """Images/s of the model forward alone on already decoded, transformed tensors."""
    import torch

    from .compute.images import read_image

    lm = embedder.loaded()
    sample = paths[:limit]
    tensors = torch.stack([lm.transform(read_image(root / p)[0]) for p in sample])
    embedder.embed_tensors(tensors[: embedder.batch_size])  # warm-up
    start = time.perf_counter()
    for s in range(0, len(tensors), embedder.batch_size):
        embedder.embed_tensors(tensors[s : s + embedder.batch_size], normalise=False)
    return len(tensors) / (time.perf_counter() - start)


def bench_folder(folder: Path, workers: int, batch_size: int) -> dict:
    from .compute.evaluate import evaluate_recipes, folder_truth
    from .compute.pipeline import Pipeline

    row: dict = {"folder": str(folder)}
    with tempfile.TemporaryDirectory() as cache:
        pipeline = Pipeline(root=folder, cache_dir=cache)
        pipeline.embedder.param.update(workers=workers, batch_size=batch_size)
        first = time.perf_counter()
        pipeline.run(until="embed")
        embed_s = pipeline.timings_["embed"]
        n = len(pipeline.embedder.paths_)
        rate = n / embed_s
        bare = bare_forward_rate(pipeline.embedder, folder, pipeline.embedder.paths_)
        row.update(images=n, pipeline_rate=round(rate, 1), bare_rate=round(bare, 1), embed_ratio=round(rate / bare, 3))
        pipeline.run()
        first = time.perf_counter() - first
        again = Pipeline(root=folder, cache_dir=cache)
        again.embedder.workers = workers
        start = time.perf_counter()
        again.run()
        rerun = time.perf_counter() - start
        row.update(first_run_s=round(first, 1), cached_rerun_s=round(rerun, 1), rerun_ratio=round(rerun / first, 3))
        truth = folder_truth(pipeline.embedder.paths_)
        if len(set(truth)) > 1:
            rows = {r["recipe"]: r for r in evaluate_recipes(pipeline.embedder.embeddings_, truth)}
            ours, seed = rows["bulk_panel"], rows["seed"]
            row.update(
                ari=round(ours["ari"], 3), seed_ari=round(seed["ari"], 3),
                nmi=round(ours["nmi"], 3), seed_nmi=round(seed["nmi"], 3),
                map_s=ours["seconds"], seed_map_s=seed["seconds"],
                map_speedup=round(seed["seconds"] / max(ours["seconds"], 1e-9), 2),
            )
    return row


def markdown(report: dict) -> str:
    lines = [f"# bulk_panel benchmark ({report['when']})", "", f"Machine: {report['machine']}", ""]
    lines += [
        "| folder | images | pipeline img/s | bare forward img/s | ratio | cached rerun ÷ first run | ARI ours / seed | NMI ours / seed | map+clusters speed-up vs seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {Path(r['folder']).name} | {r['images']} | {r['pipeline_rate']} | {r['bare_rate']} | {r['embed_ratio']} "
            f"| {r['rerun_ratio']} ({r['cached_rerun_s']} s / {r['first_run_s']} s) "
            f"| {r.get('ari', '–')} / {r.get('seed_ari', '–')} | {r.get('nmi', '–')} / {r.get('seed_nmi', '–')} "
            f"| {r.get('map_speedup', '–')}× |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bulk_panel.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", action="append", type=Path, help="image folder (repeatable; default: the demo)")
    parser.add_argument("-o", "--output", default="bench", help="report path without extension (default: bench)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    from .cli import DEMO_FOLDER

    folders = args.folder or [DEMO_FOLDER]
    report = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "rows": [],
    }
    for folder in folders:
        report["rows"].append(bench_folder(folder, args.workers, args.batch_size))
        print(json.dumps(report["rows"][-1]), flush=True)
    Path(f"{args.output}.json").write_text(json.dumps(report, indent=2))
    Path(f"{args.output}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
