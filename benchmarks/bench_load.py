"""Many browser sessions on one results file: the server's memory per extra session, and box
select → table in one session while the others select (printed, not asserted).

    python -m benchmarks.bench_load [--points 1000000] [--pages 10] [--selects 10]

``bulk-panel serve`` on synthetic results (``benchmarks.bench_ui.synthetic_results``) in a
process of its own; Chromium (1400×1000) through Playwright's async API, on 127.0.0.1 only.

1. **Memory**: ``--pages`` pages opened one after the other (each kept open, ready = the
   map's canvas and a table drawn); the server's resident memory after each. Per extra session
   = (after the last − after the first) ÷ (pages − 1).
2. **Selecting alone**: the first session box-selects ``--selects`` times, the others idle.
3. **Selecting together**: the same, while every other session box-selects in a loop.

Each select is timed from releasing the mouse until the count line and the table's first row
show it; medians and 95th percentiles. Bounded: every wait has a timeout, and the other
sessions stop when the first one is done.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from .bench_page import VIEWPORT, _free_port, _rss_mb, _running, _wait_http
from .bench_ui import ARGS, synthetic_results

BOXES = ((0.3, 0.6), (0.2, 0.8), (0.35, 0.65), (0.25, 0.55))
TABLE_ROW = ".tabulator:has(.tabulator-col[tabulator-field='outlier_score']) .tabulator-row"
TIMEOUT = 60_000  # ms
#: every page is a person at their own screen: none is throttled as a background tab would be
#: (Chromium slows a hidden page's timers, down to one wake-up a minute after five minutes)
FOREGROUND = ["--disable-background-timer-throttling", "--disable-renderer-backgrounding",
              "--disable-backgrounding-occluded-windows"]


async def _ready(page, url: str) -> None:
    await page.goto(url, timeout=TIMEOUT)
    await page.wait_for_selector("canvas", state="visible", timeout=TIMEOUT)
    await page.wait_for_selector(".tabulator", state="visible", timeout=TIMEOUT)
    await page.wait_for_timeout(1000)


async def _select(page, a: float, b: float) -> float:
    """One box select from a cleared selection: seconds until the count and the first row show it."""
    counter = page.locator("text=/[0-9,]+ of [0-9,]+ images selected/")
    await page.get_by_role("button", name="Clear selection").click(timeout=TIMEOUT)
    await counter.filter(has_text=re.compile(r"^\s*0 of")).first.wait_for(timeout=TIMEOUT)
    box = await page.locator("canvas").first.bounding_box()
    await page.mouse.move(box["x"] + box["width"] * a, box["y"] + box["height"] * a)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * b, box["y"] + box["height"] * b, steps=5)
    start = time.perf_counter()
    await page.mouse.up()
    await counter.filter(has_not_text=re.compile(r"^\s*0 of")).first.wait_for(timeout=TIMEOUT)
    await page.locator(TABLE_ROW).first.wait_for(timeout=TIMEOUT)
    return time.perf_counter() - start


async def _tried(page, a: float, b: float) -> Optional[float]:
    """:func:`_select`'s seconds, or None when a wait ran out (counted and reported, not raised)."""
    from playwright.async_api import TimeoutError as PlaywrightTimeout

    try:
        return await _select(page, a, b)
    except PlaywrightTimeout:
        return None


async def _timed(page, n: int) -> list[Optional[float]]:
    return [await _tried(page, *BOXES[k % len(BOXES)]) for k in range(n)]


async def _busy(page, stop: asyncio.Event, k: int) -> int:
    done = 0
    while not stop.is_set():
        await _tried(page, *BOXES[(k + done) % len(BOXES)])
        done += 1
    return done


def _summary(times: list[Optional[float]]) -> str:
    """median / p95 of the selects that answered, and how many did not within the timeout."""
    answered = sorted(t for t in times if t is not None)
    missed = len(times) - len(answered)
    if not answered:
        return f"none answered within {TIMEOUT // 1000} s"
    p95 = answered[min(len(answered) - 1, round(0.95 * (len(answered) - 1)))]
    return f"{statistics.median(answered):.2f} / {p95:.2f} s" + (
        f" ({missed} of {len(times)} not answered within {TIMEOUT // 1000} s)" if missed else "")


async def measure(args, url: str, pid: int) -> dict:
    from playwright.async_api import async_playwright

    out: dict = {"rss_mb": []}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=args.chromium, args=ARGS + FOREGROUND)
        pages = []
        for _ in range(args.pages):
            page = await browser.new_page(viewport=VIEWPORT)
            await _ready(page, url)
            pages.append(page)
            out["rss_mb"].append(_rss_mb(pid))
        out["alone"] = await _timed(pages[0], args.selects)
        stop = asyncio.Event()
        others = [asyncio.create_task(_busy(page, stop, k)) for k, page in enumerate(pages[1:])]
        await asyncio.sleep(2)  # the others under way
        out["together"] = await _timed(pages[0], args.selects)
        stop.set()
        out["other_selects"] = sum(await asyncio.gather(*others))
        out["rss_mb"].append(_rss_mb(pid))
        await browser.close()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--selects", type=int, default=10)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = synthetic_results(args.points).save(Path(tmp) / "results.parquet")
        port = _free_port()
        url = f"http://127.0.0.1:{port}/bulk_panel"
        with _running([sys.executable, "-m", "bulk_panel", "serve", str(path), "--port", str(port)],
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      env={**os.environ, "PYTHONWARNINGS": "ignore"}) as proc:
            _wait_http(url, proc)
            out = asyncio.run(measure(args, url, proc.pid))
    rss = out["rss_mb"]
    per = (rss[args.pages - 1] - rss[0]) / max(args.pages - 1, 1)
    print(f"{args.points:,} points, {args.pages} sessions, {args.selects} timed box selects")
    print("| what | figure |")
    print("|---|---|")
    print(f"| server memory: 1 session / {args.pages} sessions | {rss[0]:,.0f} / {rss[args.pages - 1]:,.0f} MB |")
    print(f"| per extra session | {per:,.0f} MB |")
    print(f"| box select → table, alone: median / p95 | {_summary(out['alone'])} |")
    print(f"| the same while {args.pages - 1} others select ({out['other_selects']} selects): median / p95 "
          f"| {_summary(out['together'])} |")
    print(f"| server memory after the selects | {rss[-1]:,.0f} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
