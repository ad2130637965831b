"""Benchmark: ratios against baselines measured in the same run.

    python -m benchmarks.bench --folder /tmp/fm2000 --folder /tmp/oc --only embed -o bench

(from the repository root) writes ``bench.md`` and ``bench.json``. Rows (each a ratio, since
this machine's absolute speed varies):

- embedding, per folder and backend: the embed stage's images/s (fresh cache: read, hash,
   decode, transform (between forward passes on the CPU), forward, cache shards, file index) ÷ the bare
   forward of the same engine on the same images already decoded and transformed (measured
   before and after; their mean);
- backend: ONNX Runtime vs PyTorch bare forward on the same tensors (speed ratio, max abs
   difference of the raw features, least cosine similarity of the vectors);
- map + clusters: bulk_panel's defaults vs the seed app's recipe on the same embeddings
   (time ratio, ARI, NMI) — only for folders whose first-level subfolders are classes;
   and the cached rerun: a second pipeline run on the same folder ÷ the first.

Dashboard figures (page load, box-select → table, re-render) come from
:mod:`benchmarks.bench_ui`; figures at scale from :mod:`benchmarks.bench_scale`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np


def sample_paths(folder: Path, limit: int) -> list[str]:
    """Up to ``limit`` image paths of ``folder`` (relative), evenly spread over its sorted list."""
    from bulk_panel.compute.images import ImageSource

    paths, _ = ImageSource(root=str(folder)).find()
    step = max(1, len(paths) // max(limit, 1))
    return paths[::step][:limit]


def decoded(embedder, root: Path, paths: list[str]):
    """The tensors the embed stage computes for ``paths`` (read, hash, decode, transform),
    stacked; and the CPU milliseconds per image that took in this one process."""
    start = time.process_time()
    tensors = embedder._sample([str(root / p) for p in paths], len(paths))
    return tensors, 1000 * (time.process_time() - start) / len(tensors)


def forward_rate(embedder, tensors) -> tuple[float, float]:
    """Images/s of the embedder's engine alone on already decoded, transformed tensors, and
    its CPU milliseconds per image (all its threads)."""
    size = embedder.batch_size
    embedder.embed_tensors(tensors[:size], normalise=False)  # warm-up (and engine choice)
    start, cpu = time.perf_counter(), time.process_time()
    for s in range(0, len(tensors), size):
        embedder.embed_tensors(tensors[s : s + size], normalise=False)
    return len(tensors) / (time.perf_counter() - start), 1000 * (time.process_time() - cpu) / len(tensors)


def embed_row(folder: Path, limit: int, workers: int, batch_size: int, backend: str, bare_limit: int = 256) -> dict:
    """The embedding row for one folder and backend (see the module docstring)."""
    from bulk_panel.compute.embed import Embedder

    paths = sample_paths(folder, limit + batch_size)
    warm, paths = paths[:batch_size], paths[batch_size:]
    embedder = Embedder(workers=workers, batch_size=batch_size, backend=backend)
    with tempfile.TemporaryDirectory() as cache:
        embedder.fit(folder, warm, cache)  # load, choose the engine (an ONNX export), fill caches
        tensors, decode_cpu = decoded(embedder, folder, paths[:bare_limit])
        before, forward_cpu = forward_rate(embedder, tensors)
        start = time.perf_counter()
        embedder.fit(folder, paths, cache)
        pipeline = len(embedder.paths_) / (time.perf_counter() - start)
        after, _ = forward_rate(embedder, tensors)
    bare = (before + after) / 2
    return {
        "folder": str(folder), "backend": embedder.engine(tensors[:1])[0], "images": len(embedder.paths_),
        "workers": workers, "batch_size": batch_size, "pipeline_rate": round(pipeline, 1),
        "bare_rate": round(bare, 1), "bare_before_after": [round(before, 1), round(after, 1)],
        "embed_ratio": round(pipeline / bare, 3),
        # CPU per image: where the forward alone keeps every core busy, decoding cannot hide
        "forward_cpu_ms": round(forward_cpu, 2), "decode_cpu_ms": round(decode_cpu, 2),
        "tensors": tensors,
    }


def backend_row(tensors, batch_size: int) -> dict:
    """The backend row: ONNX Runtime vs PyTorch on the same tensors: speed ratio and how far apart."""
    from bulk_panel.compute.cache import l2_normalise
    from bulk_panel.compute.embed import Embedder

    engines = {name: Embedder(workers=0, batch_size=batch_size, backend=name) for name in ("torch", "onnx")}
    rates = {name: forward_rate(e, tensors)[0] for name, e in engines.items()}
    raw = {name: np.concatenate([e.embed_tensors(tensors[s : s + batch_size], normalise=False)
                                 for s in range(0, len(tensors), batch_size)]) for name, e in engines.items()}
    cosine = (l2_normalise(raw["torch"]) * l2_normalise(raw["onnx"])).sum(axis=1)
    return {
        "images": len(tensors), "used": engines["onnx"].engine(tensors[:1])[0],
        "torch_rate": round(rates["torch"], 1), "onnx_rate": round(rates["onnx"], 1),
        "speedup": round(rates["onnx"] / rates["torch"], 2),
        "max_abs_diff": float(f"{np.abs(raw['onnx'] - raw['torch']).max():.2e}"),
        "feature_scale": round(float(np.abs(raw["torch"]).max()), 2),
        "min_cosine": round(float(cosine.min()), 8),
    }


def cluster_row(folder: Path, workers: int, batch_size: int) -> dict:
    """The clusters row for one folder: defaults vs the seed's recipe, and the cached rerun ÷ the first run."""
    from bulk_panel.compute.evaluate import evaluate_recipes, folder_truth
    from bulk_panel.compute.pipeline import Pipeline

    row: dict = {"folder": str(folder)}
    with tempfile.TemporaryDirectory() as cache:
        pipeline = Pipeline(root=folder, cache_dir=cache)
        pipeline.embedder.param.update(workers=workers, batch_size=batch_size)
        start = time.perf_counter()
        pipeline.run()
        first = time.perf_counter() - start
        again = Pipeline(root=folder, cache_dir=cache)
        again.embedder.workers = workers
        start = time.perf_counter()
        again.run()
        rerun = time.perf_counter() - start
        row.update(images=len(pipeline.embedder.paths_), first_run_s=round(first, 1),
                   cached_rerun_s=round(rerun, 1), rerun_ratio=round(rerun / first, 3))
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


def table(header: list[str], rows: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(str(v) for v in row) + " |" for row in rows
    ] + [""]


def markdown(report: dict) -> str:
    lines = [f"# bulk_panel benchmark ({report['when']})", "", f"Machine: {report['machine']}", ""]
    if report.get("embed"):
        lines += ["## Embedding: pipeline ÷ bare forward (same engine, same images)", ""]
        lines += table(
            ["folder", "backend", "images", "pipeline img/s", "bare forward img/s (before / after)", "ratio",
             "CPU ms/img: forward / read+decode+transform (1 process)"],
            [[Path(r["folder"]).name, r["backend"], r["images"], r["pipeline_rate"],
              f"{r['bare_rate']} ({r['bare_before_after'][0]} / {r['bare_before_after'][1]})",
              f"**{r['embed_ratio']}**", f"{r['forward_cpu_ms']} / {r['decode_cpu_ms']}"]
             for r in report["embed"]],
        )
    if report.get("backend"):
        r = report["backend"]
        lines += [f"## Backend: ONNX Runtime vs PyTorch on the CPU ({r['images']} decoded images)", ""]
        lines += table(
            ["PyTorch img/s", "ONNX Runtime img/s", "speed-up", "max abs diff (raw features, scale)", "least cosine", "auto uses"],
            [[r["torch_rate"], r["onnx_rate"], f"**{r['speedup']}×**", f"{r['max_abs_diff']:.1e} ({r['feature_scale']})",
              r["min_cosine"], r["used"]]],
        )
    if report.get("clusters"):
        lines += ["## Map + clusters, cached rerun", ""]
        lines += table(
            ["folder", "images", "cached rerun ÷ first run", "ARI ours / seed", "NMI ours / seed",
             "map+clusters speed-up vs seed"],
            [[Path(r["folder"]).name, r["images"], f"{r['rerun_ratio']} ({r['cached_rerun_s']} s / {r['first_run_s']} s)",
              f"{r.get('ari', '–')} / {r.get('seed_ari', '–')}", f"{r.get('nmi', '–')} / {r.get('seed_nmi', '–')}",
              f"{r.get('map_speedup', '–')}×"] for r in report["clusters"]],
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--folder", action="append", type=Path, help="image folder (repeatable; default: the demo)")
    parser.add_argument("-o", "--output", default="bench", help="report path without extension (default: bench)")
    parser.add_argument("--only", choices=["embed", "clusters"], default=None,
                        help="only the embedding and backend rows, or only the map + clusters rows")
    parser.add_argument("--limit", type=int, default=512, metavar="N",
                        help="images per folder for the embedding rows (default: 512)")
    parser.add_argument("--backends", default="auto,torch",
                        help="backends for the embedding rows, comma-separated (default: auto,torch)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="decoding threads (CPU) or DataLoader processes (GPU)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no log lines")
    parser.add_argument("--scale", action="store_true",
                        help="also the scale rows (benchmarks.bench_scale: map + clusters at 10k and 100k, "
                        "incremental, memory, cold start) on the first folder")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the benchmark rows asked for; write ``<output>.json`` and ``<output>.md``."""
    from bulk_panel import DEMO_FOLDER

    folders = args.folder or [DEMO_FOLDER]
    report: dict = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the start",
        "embed": [], "backend": None, "clusters": [],
    }
    if args.only != "clusters":
        for folder in folders:
            for backend in args.backends.split(","):
                row = embed_row(folder, args.limit, args.workers, args.batch_size, backend.strip())
                tensors = row.pop("tensors")
                report["embed"].append(row)
                print(json.dumps(row), flush=True)
        report["backend"] = backend_row(tensors, args.batch_size)  # the last folder's images
        print(json.dumps(report["backend"]), flush=True)
    if args.only != "embed":
        for folder in folders:
            report["clusters"].append(cluster_row(folder, args.workers, args.batch_size))
            print(json.dumps(report["clusters"][-1]), flush=True)
    text = markdown(report)
    if args.scale:
        from . import bench_scale

        report["scale"] = bench_scale.rows_for(bench_scale.make_parser().parse_args(["--folder", str(folders[0])]))
        text += "\n" + bench_scale.markdown(report["scale"])
    Path(f"{args.output}.json").write_text(json.dumps(report, indent=2, default=str))
    Path(f"{args.output}.md").write_text(text)
    print(text)
    return 0


def main(argv=None) -> int:
    import logging

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__.split("\n\n")[0])
    args = add_arguments(parser).parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
