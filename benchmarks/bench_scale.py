"""Scale benchmarks: ratios and figures printed, never asserted.

    python -m benchmarks.bench_scale --folder /tmp/fm10k --cache-dir /tmp/bpc4 -o bench_scale

(from the repository root) writes ``bench_scale.md`` and ``bench_scale.json``. Rows
(``--rows``):

- ``map``: map + clusters at 10k and 100k points: bulk_panel's defaults vs the seed app's recipe on
   the same embeddings (wall and CPU time ratio, ARI against the folders). Above the folder's
   size the embeddings are jittered copies of the real ones (each copy keeps its folder) —
   good for timing only: the copies form tight knots of ~10 that both recipes cluster
   as such, so ARI there means nothing; give a folder with that many real images instead;
- ``incremental``: ``bulk-panel run`` on a folder, then again after 1% new images: rerun ÷ first
   run (both fresh processes), and whether the new images were placed into the saved map;
- ``memory``: peak RSS of a process holding 100k images' results in a ``ResultsStore`` (frame,
   selection, label edits, the embeddings read);
- ``parts``: a folder of 1M rows in parts, opened lazily against read whole (fresh processes):
   load time, rows in memory, peak RSS, reading the rows of a 50k-row and an 80-row box;
- ``cold``: cold start: a fresh ``bulk-panel run`` until its first embedded batch, and ``panel serve
   app.py`` until the page answers.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

import numpy as np

from bulk_panel.compute.evaluate import jittered

REPO = Path(__file__).resolve().parent.parent


def map_and_clusters(embeddings: np.ndarray, truth: np.ndarray, sizes=(10_000, 100_000), orders: int = 1) -> list[dict]:
    """The map row: defaults vs the seed's recipe at each size, over ``orders`` draws (each its own sample of the rows, or its own jittered copies, in
    its own row order: ARI moves with the sample and with the order alone): mean and min ARI, mean
    times, speed-ups of the mean times (see :func:`evaluate_recipes`)."""
    from bulk_panel.compute.evaluate import evaluate_recipes

    out = []
    for n in sizes:
        runs: dict = {}
        for order in range(orders):
            # each draw: another sample of n rows (or other jittered copies), in another order
            x, t = jittered(embeddings, truth, n, seed=order)
            perm = np.random.default_rng(order).permutation(len(x)) if order else np.arange(len(x))
            for r in evaluate_recipes(x[perm], t[perm]):
                runs.setdefault(r["recipe"], []).append(r)
        stats = {name: {
            "ari": round(float(np.mean([r["ari"] for r in rs])), 3), "ari_min": round(min(r["ari"] for r in rs), 3),
            "nmi": round(float(np.mean([r["nmi"] for r in rs])), 3),
            "clusters": "-".join(sorted({str(min(r["clusters"] for r in rs)), str(max(r["clusters"] for r in rs))}, key=int)),
            "noise": round(float(np.mean([r["noise"] for r in rs])), 3),
            "seconds": round(float(np.mean([r["seconds"] for r in rs])), 2),
            "cpu_seconds": round(float(np.mean([r["cpu_seconds"] for r in rs])), 2),
        } for name, rs in runs.items()}
        ours, seed = stats["bulk_panel"], stats["seed"]
        out.append({
            "n": n, "orders": orders,
            "data": "real" if n <= len(embeddings) else f"{len(embeddings)} real + jittered copies",
            **ours, **{f"seed_{k}": v for k, v in seed.items()},
            "speedup": round(seed["seconds"] / max(ours["seconds"], 1e-9), 2),
            "cpu_speedup": round(seed["cpu_seconds"] / max(ours["cpu_seconds"], 1e-9), 2),
        })
        print(json.dumps(out[-1]), flush=True)
    return out


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "bulk_panel", *args]


def _timed(cmd: list[str], env: Optional[dict] = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def incremental(folder: Path, n: int = 1000, fraction: float = 0.01, workers: int = 2) -> dict:
    """The incremental row: a fresh-process run on ``n`` images of ``folder``, then a rerun after adding
    ``fraction`` more of its images (fresh cache, so the first run embeds everything)."""
    from bulk_panel.compute.images import ImageSource
    from bulk_panel.compute.results import load_results

    paths, _ = ImageSource(root=str(folder)).find()
    order = np.random.default_rng(0).permutation(len(paths))
    extra = max(1, int(round(n * fraction)))
    if len(paths) < n + extra:
        raise ValueError(f"{folder}: {len(paths)} images, {n + extra} needed")
    with tempfile.TemporaryDirectory() as tmp:
        work, cache, out = Path(tmp) / "images", Path(tmp) / "cache", Path(tmp) / "r.parquet"

        def add(picks):
            for i in picks:
                dest = work / paths[i]
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(folder / paths[i], dest)

        add(order[:n])
        cmd = _cli("run", str(work), "-q", "-o", str(out), "--cache-dir", str(cache), "--workers", str(workers))
        first = _timed(cmd)
        before = load_results(out)
        add(order[n : n + extra])
        rerun = _timed(cmd)
        after = load_results(out)
        old = before.frame.set_index("path")[["x", "y"]]
        moved = float(np.abs(after.frame.set_index("path").loc[old.index, ["x", "y"]].to_numpy() - old.to_numpy()).max())
    row = {"images": n, "added": extra, "first_run_s": round(first, 1), "rerun_s": round(rerun, 1),
           "ratio": round(rerun / first, 3), "map": after.meta.get("map"), "old_points_moved_max": moved,
           "rerun_timings": after.meta.get("timings")}
    print(json.dumps(row), flush=True)
    return row


MEMORY_SCRIPT = """
import sys, numpy as np
from bulk_panel.compute.results import load_results
from bulk_panel.state import ResultsStore
def rss():  # peak resident MB of this process (VmHWM; ru_maxrss would include the parent's before exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
n, path = int(sys.argv[1]), sys.argv[2]
base = rss()
store = ResultsStore(results=load_results(path))
loaded = rss()
store.select_box(-5, -5, 5, 5); store.relabel("picked"); store.undo(); store.redo()
store.selection = np.arange(0, n, 3); store.relabel("thirds"); store.label_summary; store.selected_frame
frame_peak = rss()
store.results.embeddings; store.results.cluster_coords
print({"imports_mb": round(base), "loaded_mb": round(loaded), "store_peak_mb": round(frame_peak),
       "with_vectors_peak_mb": round(rss())})
"""


def memory(n: int = 100_000, dims: int = 1280) -> dict:
    """The memory row: peak RSS (MB) of a fresh process that opens ``n`` rows of results (written with
    ``dims``-d embeddings) in a ResultsStore, selects, relabels and undoes; then reads the vectors."""
    from .bench_ui import synthetic_results

    with tempfile.TemporaryDirectory() as tmp:
        results = synthetic_results(n)
        results._embeddings = np.random.default_rng(0).normal(size=(n, dims)).astype(np.float32)
        results._cluster_coords = np.random.default_rng(1).normal(size=(n, 10)).astype(np.float32)
        path = results.save(Path(tmp) / "r.parquet")
        del results
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(n), str(path)],
                             capture_output=True, text=True, check=True)
    import ast

    row = {"n": n, "embedding_dims": dims, **ast.literal_eval(out.stdout.strip().splitlines()[-1])}
    print(json.dumps(row), flush=True)
    return row


PARTS_SCRIPT = """
import json, statistics, sys, time
import numpy as np
from bulk_panel.compute.results import load_results
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
path, lazy = sys.argv[1], sys.argv[2] == "lazy"
start = time.perf_counter()
results = load_results(path, lazy=lazy)
load_s = time.perf_counter() - start
out = {"mode": sys.argv[2], "load_s": round(load_s, 2), "rows_mb": round(results.frame.memory_usage(deep=True).sum() / 1e6),
       "peak_rss_mb": round(rss())}
f, rng = results.frame, np.random.default_rng(0)
x, y = f.x.to_numpy(), f.y.to_numpy()
for want in (50_000, 80):
    times = []
    for _ in range(5):  # a different box each time: no read is served from the previous one
        cx, cy = x[rng.integers(len(x))], y[rng.integers(len(y))]
        order = np.argsort(np.maximum(np.abs(x - cx), np.abs(y - cy)))[:want]  # the box around a point holding `want`
        rows = np.sort(order)
        start = time.perf_counter()
        results.take(rows, ["path", "content_hash", "label", "x", "y"])
        times.append(time.perf_counter() - start)
    out[f"select_{want}_ms"] = round(1000 * statistics.median(times))
print(json.dumps(out))
"""


def parts(n: int = 1_000_000) -> dict:
    """The parts row: a folder of ``n`` rows in parts, opened lazily (text columns left on disk)
    against read whole, each in a fresh process: load time, rows in memory, peak RSS, and the
    time to read the rows of a 50k-row and an 80-row box (median of 5 boxes)."""
    from .bench_ui import synthetic_results

    with tempfile.TemporaryDirectory() as tmp:
        folder = synthetic_results(n).save(Path(tmp) / "results", rows_per_part=250_000)
        row = {"n": n}
        for mode in ("lazy", "full"):
            out = subprocess.run([sys.executable, "-c", PARTS_SCRIPT, str(folder), mode],
                                 capture_output=True, text=True, check=True)
            row[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(row), flush=True)
    return row


def _first_batch_seconds(cmd: list[str], timeout: float = 600) -> tuple[float, float]:
    """Seconds from start until the embed progress bar first counts images, and until exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    seen: list[float] = []
    pattern = re.compile(rb"embed:\s+\d+%.*?\b([1-9]\d*)/\d+")

    def read():
        buf = b""
        while chunk := proc.stderr.read1(4096):
            buf = (buf + chunk)[-4096:]
            if not seen and pattern.search(buf):
                seen.append(time.perf_counter() - start)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    proc.wait(timeout)
    reader.join(5)
    return (seen[0] if seen else float("nan")), time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_ready_seconds(results: Path, timeout: float = 300) -> float:
    """Seconds from ``panel serve app.py`` to the page answering with the rendered document."""
    import urllib.request

    port = _free_port()
    cmd = [sys.executable, "-m", "panel", "serve", str(REPO / "app.py"), "--port", str(port), "--address", "127.0.0.1",
           "--allow-websocket-origin", f"127.0.0.1:{port}", "--plugins", "bulk_panel.server", "--args", str(results)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - start < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/app", timeout=timeout) as page:
                    if page.status == 200 and b"bokeh" in page.read().lower():
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.1)
        return float("nan")
    finally:
        proc.send_signal(2)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cold_start(folder: Path, results: Path, numba_cache: Optional[Path] = None) -> dict:
    """The cold row: fresh processes, twice each (the second finds numba's on-disk cache filled).

    ``numba_cache``: the NUMBA_CACHE_DIR to use (default: a new empty folder, so the first
    process shows the cost without a cache)."""
    row: dict = {"folder": str(folder)}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"NUMBA_CACHE_DIR": str(numba_cache or Path(tmp) / "numba")}
        os.environ.update(env)
        for attempt in ("first", "second"):
            cache = Path(tmp) / f"cache-{attempt}"
            batch, total = _first_batch_seconds(
                _cli("run", str(folder), "-o", str(Path(tmp) / "r.parquet"), "--cache-dir", str(cache), "--workers", "0"))
            row[f"run_{attempt}_batch_s"], row[f"run_{attempt}_total_s"] = round(batch, 1), round(total, 1)
            row[f"serve_{attempt}_s"] = round(serve_ready_seconds(results), 1)
            print(json.dumps(row), flush=True)
    return row


def markdown(report: dict) -> str:
    lines = [f"# bulk_panel scale benchmark ({report['when']})", "", f"Machine: {report['machine']}", ""]
    if report.get("map"):
        lines += ["| N | data | draws | ARI mean (min): ours / seed | clusters ours / seed "
                  "| time ours / seed (wall) | speed-up vs seed, wall / CPU |",
                  "|---|---|---|---|---|---|---|"]
        for r in report["map"]:
            ari = " / ".join(f"{r[p + 'ari']:.3f} ({r[p + 'ari_min']:.3f})" for p in ("", "seed_"))
            lines.append(f"| {r['n']:,} | {r['data']} | {r['orders']} | {ari} "
                         f"| {r['clusters']} / {r['seed_clusters']} "
                         f"| {r['seconds']} s / {r['seed_seconds']} s "
                         f"| {r['speedup']}× / {r['cpu_speedup']}× |")
        lines.append("")
    if report.get("incremental"):
        r = report["incremental"]
        lines.append(f"Incremental: +{r['added']} images to {r['images']}: rerun {r['rerun_s']} s ÷ first run "
                     f"{r['first_run_s']} s = **{r['ratio']}** (map: {r['map']}; old points moved at most {r['old_points_moved_max']})")
    if report.get("memory"):
        r = report["memory"]
        lines.append(f"Memory, {r['n']:,} rows in a ResultsStore: imports {r['imports_mb']} MB, loaded {r['loaded_mb']} MB, "
                     f"after selecting and relabelling {r['store_peak_mb']} MB, "
                     f"with the {r['embedding_dims']}-d embeddings read {r['with_vectors_peak_mb']} MB (peak RSS)")
    if report.get("parts"):
        r = report["parts"]
        lines += ["", f"A folder of parts, {r['n']:,} rows: opened lazily / read whole", "",
                  "| | lazy | every column |", "|---|---|---|"]
        for key, name, unit in (("rows_mb", "rows in memory", "MB"), ("peak_rss_mb", "peak RSS after load", "MB"),
                                ("load_s", "load", "s"), ("select_50000_ms", "a 50k-row box's rows", "ms"),
                                ("select_80_ms", "an 80-row box's rows", "ms")):
            lines.append(f"| {name} | {r['lazy'][key]} {unit} | {r['full'][key]} {unit} |")
        lines.append("")
    if report.get("cold"):
        r = report["cold"]
        lines.append(f"Cold start: `bulk-panel run` → first embedded batch {r['run_first_batch_s']} s, then {r['run_second_batch_s']} s; "
                     f"whole run {r['run_first_total_s']} s, then {r['run_second_total_s']} s (numba cache filled); "
                     f"`panel serve app.py` → page {r['serve_first_s']} s, then {r['serve_second_s']} s")
    return "\n".join(lines) + "\n"


def rows_for(args) -> dict:
    """All the rows the arguments ask for, as a report dict."""
    report: dict = {"when": time.strftime("%Y-%m-%d %H:%M"),
                    "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"}
    if "map" in args.rows:
        from bulk_panel.compute.evaluate import folder_truth
        from bulk_panel.compute.pipeline import Pipeline

        pipeline = Pipeline(root=args.folder, cache_dir=args.cache_dir)
        pipeline.run(until="embed")
        truth = folder_truth(pipeline.embedder.paths_)
        report["map"] = map_and_clusters(pipeline.embedder.embeddings_, truth, args.sizes, args.orders)
    if "incremental" in args.rows:
        report["incremental"] = incremental(args.folder, args.incremental_images)
    if "memory" in args.rows:
        report["memory"] = memory()
    if "parts" in args.rows:
        report["parts"] = parts()
    if "cold" in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            from .bench_ui import synthetic_results

            results = synthetic_results(10_000).save(Path(tmp) / "r.parquet")
            report["cold"] = cold_start(args.cold_folder, results)
    return report


def make_parser() -> argparse.ArgumentParser:
    """The arguments of ``python -m benchmarks.bench_scale``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/fm10k"), help="image folder with class subfolders")
    parser.add_argument("--cache-dir", default=None, help="embedding cache that may already hold the folder's vectors")
    parser.add_argument("--cold-folder", type=Path, default=REPO / "bulk_panel" / "demo", help="folder for the cold-start run")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--orders", type=int, default=1, help="draws per size for the map row: each its own sample and row order (ARI mean/min)")
    parser.add_argument("--incremental-images", type=int, default=1000)
    parser.add_argument("--rows", nargs="+", default=["map", "incremental", "memory", "parts", "cold"],
                        choices=["map", "incremental", "memory", "parts", "cold"])
    parser.add_argument("-o", "--output", default="bench_scale", help="report path without extension")
    return parser


def main(argv=None) -> int:
    args = make_parser().parse_args(argv)
    report = rows_for(args)
    Path(f"{args.output}.json").write_text(json.dumps(report, indent=2, default=str))
    Path(f"{args.output}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
