"""Box select → table in one session while another session's pipeline run embeds, with the run
in a thread of the server and in a process of its own, in one run (printed, not asserted).

    python -m benchmarks.bench_sessions --results data/fm10k.parquet --folder data/fmnist5k [--selects 20]

One server per mode (``thread``, ``process``), in a process of its own, serving two pages:
``/explore``, a dashboard on ``--results``, and ``/run``, a dashboard on ``--folder`` with a
fresh embedding cache, whose pipeline starts when the page opens (as ``bulk-panel serve
FOLDER`` does). Chromium (1400×1000) first box-selects ``--selects`` times on /explore with
nothing running (idle), then opens /run and, while its page says it is embedding, box-selects
``--selects`` times again. Each select is timed from releasing the mouse until the count line
and the table's first row show it (:func:`benchmarks.bench_page.box_selects`); medians and 95th
percentiles, and the ratio of the busy median to the idle one.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bench_page import VIEWPORT, _free_port, _running, _wait_http, box_selects
from .bench_ui import ARGS

BOXES = ((0.2, 0.8), (0.1, 0.9), (0.25, 0.75), (0.15, 0.85))  # large: a map of real images has gaps


def serve(results: str, folder: str, cache: str, port: int, process: bool) -> None:
    """The server of one mode (runs in its own process)."""
    import panel as pn

    from bulk_panel.server import ROUTES
    from bulk_panel.server.session import make_dashboard
    from bulk_panel.views import Dashboard

    pn.extension("tabulator")
    apps = {"explore": lambda: Dashboard.from_path(results).page(),
            "run": lambda: make_dashboard(folder, output=None, allowed_roots=None, cache_dir=cache,
                                          process=process).page()}
    pn.serve(apps, port=port, address="127.0.0.1", show=False, websocket_origin=[f"127.0.0.1:{port}"],
             extra_patterns=ROUTES)


def _percentile(values, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def measure(browser, args, mode: str) -> dict:
    port = _free_port()
    with tempfile.TemporaryDirectory() as cache, _running(
            [sys.executable, "-m", "benchmarks.bench_sessions", "--serve", mode, "--results", str(args.results),
             "--folder", str(args.folder), "--cache", cache, "--port", str(port)],
            env={**os.environ, "PYTHONWARNINGS": "ignore"}, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL) as proc:
        _wait_http(f"http://127.0.0.1:{port}/explore", proc)
        explore = browser.new_page(viewport=VIEWPORT)
        explore.goto(f"http://127.0.0.1:{port}/explore")
        explore.wait_for_selector("canvas", timeout=120_000)
        explore.wait_for_selector(".tabulator", timeout=120_000)
        explore.wait_for_timeout(1500)
        boxes = [BOXES[k % len(BOXES)] for k in range(args.selects)]
        idle = [t for t, _ in box_selects(explore, boxes)]
        run = browser.new_page(viewport=VIEWPORT)
        run.goto(f"http://127.0.0.1:{port}/run")
        embedding = run.get_by_text("embedding images", exact=False).first
        embedding.wait_for(timeout=180_000)
        states: list[bool] = []
        busy = box_selects(explore, boxes, between=lambda: states.append(embedding.is_visible()))
        still = embedding.is_visible()
        busy = [t for (t, _), now in zip(busy, states) if now]  # selects that started while it embedded
        started = time.perf_counter()
        run.get_by_text(re.compile(r"Map · [1-9][0-9,]* images")).first.wait_for(timeout=1_800_000)  # its results
        out = {"mode": mode, "idle_median_s": statistics.median(idle), "idle_p95_s": _percentile(idle, 0.95),
               "busy_selects": len(busy), "embedding_at_the_end": still,
               "run_left_s": round(time.perf_counter() - started, 1)}
        if busy:
            out.update(busy_median_s=statistics.median(busy), busy_p95_s=_percentile(busy, 0.95),
                       ratio=statistics.median(busy) / statistics.median(idle))
        explore.close()
        run.close()
        return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sessions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="results file the exploring session opens")
    parser.add_argument("--folder", type=Path, required=True, help="image folder the other session runs on")
    parser.add_argument("--selects", type=int, default=20)
    parser.add_argument("--modes", nargs="+", default=["thread", "process"], choices=["thread", "process"])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--serve", choices=["thread", "process"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(str(args.results), str(args.folder), args.cache, args.port, args.serve == "process")
        return 0
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        for mode in args.modes:
            rows.append(measure(browser, args, mode))
            print(rows[-1], flush=True)
        browser.close()
    print(f"\n{args.selects} box selects on {args.results} while a run embeds {args.folder}")
    print("| the run | idle median / p95 | while it embeds: median / p95 (selects) | busy ÷ idle |")
    print("|---|---|---|---|")
    for r in rows:
        busy = (f"{r['busy_median_s']:.2f} / {r['busy_p95_s']:.2f} s ({r['busy_selects']})" if "ratio" in r
                else "(the run was done embedding first)")
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        print(f"| in a {r['mode']} | {r['idle_median_s']:.2f} / {r['idle_p95_s']:.2f} s | {busy} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
