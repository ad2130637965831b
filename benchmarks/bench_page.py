"""The served page beside the seed app's, in one run: page ready (cold and warm), box select →
table, server memory (printed, not asserted).

    python -m benchmarks.bench_page --sizes 1000 10000 [--seed-app WORK/demo --seed-python VENV/bin/python]

For each size, synthetic results (``benchmarks.bench_ui.synthetic_results``) are served by
``bulk-panel serve`` in a fresh process, and, with ``--seed-app``, the same points by the seed app
(bulk-image-clustering's ``demo/``, under Bokeh 2.4.3 in its own environment; see
../shared/PEERS.md) from a CSV of its columns. Chromium (1400×1000) then opens each page:

- **ready**: from navigation until the map's canvas and a table are drawn; "cold" is the first
  page of the fresh server, "warm" the best of the next three; with the server's time to the
  first byte and the browser's DOMContentLoaded;
- **box select → table**: from releasing the mouse until the table shows the selected rows
  (ours: the count line and the first row; the seed: its first row changed), median of 3 boxes;
  for ours also the gap between the count and the table updating;
- **server memory**: the server process's resident memory after the pages (VmRSS).

With ``--bare``, the same page loads also time ``benchmarks.bare_page``, the least a Panel page
with this first screen can be (a scatter and an 8-row table; bare, and in Panel's Fast
template): the floor under the dashboard's ready time on this machine.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from .bench_ui import ARGS, synthetic_results

VIEWPORT = {"width": 1400, "height": 1000}
BOXES = ((0.3, 0.6), (0.2, 0.8), (0.35, 0.65))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rss_mb(pid: int) -> Optional[float]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        return None
    return None


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    import urllib.request

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}): {proc.stderr.read()[-500:] if proc.stderr else ''}")
        try:
            urllib.request.urlopen(url.rsplit("/", 1)[0] + "/", timeout=2)  # the server answers (any page)
            return
        except Exception as exc:  # noqa: BLE001 - not up yet
            if getattr(exc, "code", None):
                return
            time.sleep(0.1)
    raise TimeoutError(url)


def _load(page, url: str, canvas: str, table: str) -> dict:
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(canvas, state="visible", timeout=180_000)
    page.wait_for_selector(table, state="visible", timeout=180_000)
    ready = time.perf_counter() - start
    nav = json.loads(page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])"))
    return {"ready_s": round(ready, 2), "first_byte_s": round(nav["responseStart"] / 1000, 2),
            "dom_s": round(nav["domContentLoadedEventEnd"] / 1000, 2)}


@contextlib.contextmanager
def _running(cmd: list[str], **popen):
    """A server process for the length of the block, stopped after it."""
    proc = subprocess.Popen(cmd, **popen)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _finish(page, proc, out: dict) -> dict:
    """The server's memory once its pages were shown; the page closed."""
    out["server_mb"] = _rss_mb(proc.pid)
    page.close()
    return out


def _loads(browser, url: str, canvas: str, table: str, out: dict):
    """Four page loads: the first is "cold", the best of the others "warm"; returns the last page."""
    loads = []
    for attempt in range(4):
        page = browser.new_page(viewport=VIEWPORT)
        loads.append(_load(page, url, canvas, table))
        if attempt < 3:
            page.close()
    out["cold"], out["warm"] = loads[0], min(loads[1:], key=lambda r: r["ready_s"])
    page.wait_for_timeout(1500)
    return page


def _drag(page, canvas, a: float, b: float) -> float:
    box = page.locator(canvas).first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * a, box["y"] + box["height"] * a)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * b, box["y"] + box["height"] * b, steps=5)
    start = time.perf_counter()
    page.mouse.up()
    return start


def measure_ours(browser, results_path: Path, n: int) -> dict:
    port = _free_port()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    url = f"http://127.0.0.1:{port}/bulk_panel"
    out: dict = {"who": "bulk_panel", "points": n}
    with _running([sys.executable, "-m", "bulk_panel", "serve", str(results_path), "--port", str(port)],
                  stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env) as proc:
        started = time.perf_counter()
        for line in proc.stderr:  # the URL is printed once the port is bound
            if "serving" in line:
                break
        out["server_start_s"] = round(time.perf_counter() - started, 2)
        page = _loads(browser, url, "canvas", ".tabulator", out)
        selects, gaps = zip(*box_selects(page, BOXES))
        out["select_s"] = round(statistics.median(selects), 2)
        out["count_table_gap_s"] = round(max(gaps), 2)
        return _finish(page, proc, out)


def box_selects(page, boxes, between=None) -> list[tuple[float, float]]:
    """Box selects on our page's map, each from a cleared selection: for each box (corners as
    shares of the canvas), (seconds from releasing the mouse until the count line and the
    table's first row show the selection, the gap between those two). ``between()`` runs
    before each box."""
    out = []
    counter = page.locator("text=/[0-9,]+ of [0-9,]+ images selected/")
    for k, (a, b) in enumerate(boxes):
        if between is not None:
            between()
        if k:
            page.get_by_role("button", name="Clear selection").click()
            counter.filter(has_text=re.compile(r"^\s*0 of")).first.wait_for(timeout=60_000)
        start = _drag(page, "canvas", a, b)
        # a count other than 0 ("1,660 of 10,000" contains "0 of 10,000")
        counter.filter(has_not_text=re.compile(r"^\s*0 of")).first.wait_for(timeout=60_000)
        t_count = time.perf_counter() - start
        page.locator(".tabulator:has(.tabulator-col[tabulator-field='outlier_score']) .tabulator-row").first.wait_for(
            timeout=60_000)
        t_table = time.perf_counter() - start
        out.append((max(t_count, t_table), abs(t_table - t_count)))
    return out


def seed_folder(work: Path, app: Path, n: int) -> Path:
    """The seed app's folder under ``work``: its ``demo/`` app and a CSV of ``n`` synthetic points
    whose images are a few small PNGs (its table shows them)."""
    from PIL import Image

    demo = work / "demo"
    if not demo.exists():
        shutil.copytree(app, demo, ignore=shutil.ignore_patterns("__pycache__"))
    images = demo / "static" / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(8):
        Image.new("RGB", (64, 64), (30 * i, 100, 200 - 20 * i)).save(images / f"img{i}.png")
    frame = synthetic_results(n).frame
    rows = {"text": [f"img_{i:07d}" for i in range(n)], "x": frame["x"], "y": frame["y"],
            "filename": [f"./demo/static/images/img{i % 8}.png" for i in range(n)],
            "color": frame["cluster"].to_numpy() + 1}
    import pandas as pd

    csv = work / f"pts{n}.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def measure_seed(browser, app: Path, python: str, n: int, work: Path) -> dict:
    csv = seed_folder(work, app, n)
    port = _free_port()
    bokeh = str(Path(python).parent / "bokeh")
    url = f"http://127.0.0.1:{port}/demo"
    out: dict = {"who": "seed", "points": n}
    with _running([bokeh, "serve", "demo", "--address", "127.0.0.1", "--port", str(port),
                   "--allow-websocket-origin", f"127.0.0.1:{port}", "--websocket-max-message-size",
                   "2147483647", "--args", str(csv)], cwd=work, stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL) as proc:
        started = time.perf_counter()
        _wait_http(url, proc)
        out["server_start_s"] = round(time.perf_counter() - started, 2)
        page = _loads(browser, url, ".bk-root canvas", ".slick-row", out)
        page.locator(".bk-tool-icon-box-select").first.click()
        selects = []
        for a, b in BOXES:
            first = page.locator(".slick-row").first.inner_text()
            start = _drag(page, ".bk-root canvas", a, b)
            try:
                page.wait_for_function(
                    "first => { const r = document.querySelector('.slick-row'); return r && r.innerText !== first; }",
                    arg=first, timeout=120_000)
                selects.append(time.perf_counter() - start)
            except Exception:  # noqa: BLE001 - the seed app never answered
                selects.append(float("inf"))
                break
        out["select_s"] = round(statistics.median(selects), 2) if all(s != float("inf") for s in selects) else None
        return _finish(page, proc, out)


def measure_bare(browser, n: int, template: str) -> dict:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/bare"
    out: dict = {"who": f"bare Panel page ({template} template)", "points": n}
    with _running([sys.executable, "-m", "benchmarks.bare_page", str(port), str(n), "--template", template],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        started = time.perf_counter()
        _wait_http(url, proc)
        out["server_start_s"] = round(time.perf_counter() - started, 2)
        return _finish(_loads(browser, url, "canvas", ".tabulator", out), proc, out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--seed-app", type=Path, default=None, help="the seed app's demo/ folder (see PEERS.md)")
    parser.add_argument("--seed-python", default=None, help="python of the seed app's environment (Bokeh 2.4.3)")
    parser.add_argument("--bare", action="store_true", help="also time the bare Panel page (benchmarks/bare_page.py)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        for n in args.sizes:
            path = synthetic_results(n).save(Path(tmp) / f"r{n}.parquet")
            rows.append(measure_ours(browser, path, n))
            print(json.dumps(rows[-1]), flush=True)
            if args.seed_app and args.seed_python:
                rows.append(measure_seed(browser, args.seed_app, args.seed_python, n, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
            if args.bare:
                for template in ("none", "fast"):
                    rows.append(measure_bare(browser, n, template))
                    print(json.dumps(rows[-1]), flush=True)
        browser.close()
    print("\n| points | who | ready cold / warm | first byte (warm) | box select → table | server MB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        select = "–" if "select_s" not in r else "never" if r["select_s"] is None else f"{r['select_s']:.2f} s"
        print(f"| {r['points']:,} | {r['who']} | {r['cold']['ready_s']:.2f} / {r['warm']['ready_s']:.2f} s "
              f"| {r['warm']['first_byte_s']:.2f} s | {select} | {r['server_mb']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
