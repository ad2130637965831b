"""Dashboard figures at 100k and 1M synthetic points (printed, not asserted).

    python -m benchmarks.bench_ui [--sizes 2000 100000 1000000] [--chromium /usr/bin/chromium]

For each size: builds synthetic Results (blobs, a few dozen labels), serves the dashboard, and
with Playwright + Chromium measures the page load until the map canvas and the table are
drawn (and the models the page holds), the server time to build one session's document, the
server time to re-render the map after a zoom (its plot's streams triggered), and the box
select → table time in the browser (mouse drag → ``store.selection`` → the page's row counter).
"""
from __future__ import annotations

import argparse
import logging
import socket
import time
from typing import Optional

import numpy as np

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def synthetic_results(n: int, labels: int = 36, seed: int = 0):
    """Gaussian blobs around ``labels`` centres (5 % noise), with the results frame's columns."""
    from bulk_panel.compute.results import Results, build_frame

    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, labels, n)
    cluster[rng.random(n) < 0.05] = -1
    centres = rng.uniform(-20, 20, (labels + 1, 2))
    xy = centres[cluster + 1] + rng.normal(scale=1.2, size=(n, 2))
    names = np.array([f"cluster {c}" for c in range(labels)] + ["noise"], dtype=object)
    frame = build_frame(
        paths=[f"set {i % 50}/img_{i:07d}.jpg" for i in range(n)],
        hashes=[f"{i:032x}" for i in range(n)],
        sizes=np.full((n, 2), 64), xy=xy, clusters=cluster,
        probabilities=np.where(cluster < 0, 0.0, rng.uniform(0.2, 1, n)), outlier_scores=rng.random(n),
        labels=names[cluster],  # -1 → last entry, "noise"
    )
    return Results(frame=frame)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout=60.0, step=0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return False


def document_build(results, repeats: int = 2) -> tuple[float, int]:
    """Seconds the server takes to build one session's Bokeh document (the dashboard, its
    template and every model, as a served session does before the page is sent), and how many
    Bokeh models the document holds. Best of ``repeats`` after one warm-up."""
    from bokeh.document import Document

    from bulk_panel.state import ResultsStore
    from bulk_panel.views import Dashboard

    best, models = np.inf, 0
    for attempt in range(repeats + 1):
        t = time.perf_counter()
        doc = Document()
        Dashboard(store=ResultsStore(results=results)).template().server_doc(doc)
        if attempt:  # the first pays one-off imports and compilation
            best = min(best, time.perf_counter() - t)
        models = len(doc.models)
    return best, models


def rerender_time(results, repeats: int = 3) -> Optional[float]:
    """Seconds the server takes to re-render a dashboard's map for a zoomed-in range: the map of
    a new dashboard on ``results`` is rendered into a document, then its plot's range and size
    streams are triggered as a zoom in the browser triggers them (datashading, HoloViews and the
    Bokeh model update)."""
    import holoviews as hv
    from bokeh.document import Document

    from bulk_panel.state import ResultsStore
    from bulk_panel.views import Dashboard

    dashboard = Dashboard(store=ResultsStore(results=results))
    if not dashboard.scatter.rasterized:
        return None  # plain points: the browser zooms them, the server draws nothing
    frame = dashboard.store.frame
    pane = dashboard.scatter.__panel__()
    root = pane.get_root(Document())
    plot = pane._plots[root.ref["id"]][0]
    streams = []
    for sub in plot.traverse(lambda p: p):
        streams += [s for s in getattr(sub, "streams", []) if isinstance(s, (hv.streams.RangeXY, hv.streams.PlotSize))
                    and s not in streams]
    ranges = [s for s in streams if isinstance(s, hv.streams.RangeXY)]
    for s in streams:
        if isinstance(s, hv.streams.PlotSize):
            s.update(width=900, height=640, scale=1.0)
    x0, x1 = np.quantile(frame["x"], [0.3, 0.6])
    y0, y1 = np.quantile(frame["y"], [0.3, 0.6])
    best = np.inf
    for k in range(repeats + 1):
        for s in ranges:  # a slightly different range each time: nothing may come from a cache
            s.update(x_range=(x0 - 0.01 * k, x1), y_range=(y0, y1 + 0.01 * k))
        t = time.perf_counter()
        hv.streams.Stream.trigger(ranges)
        if k:  # the first may compile the aggregation for this range's code path
            best = min(best, time.perf_counter() - t)
    return best


def measure(n: int, chromium: str) -> dict:
    import panel as pn
    from playwright.sync_api import sync_playwright

    from bulk_panel.state import ResultsStore
    from bulk_panel.server import ROUTES
    from bulk_panel.views import Dashboard, warm_datashader

    t = time.perf_counter()
    results = synthetic_results(n)
    build_s = time.perf_counter() - t
    made = []

    def app():
        made.append(Dashboard(store=ResultsStore(results=results)))
        return made[-1].template()

    pn.extension("tabulator")
    port = _free_port()
    warm_datashader()  # as `bulk-panel serve` does at start (not waited for: the page is asked for at once)
    server = pn.serve(app, port=port, address="127.0.0.1", threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}"], extra_patterns=ROUTES)
    out = {"points": n, "build_results_s": build_s}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            for attempt in ("cold", "warm"):
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t = time.perf_counter()
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector(".tabulator", timeout=120_000)
                page.wait_for_selector("canvas", timeout=120_000)
                out[f"page_load_{attempt}_s"] = time.perf_counter() - t
                out["page_models"] = page.evaluate("Bokeh.documents[0].all_models.size")
                if attempt == "cold":
                    page.close()
            page.wait_for_timeout(2000)
            store = made[-1].store
            canvas = page.locator("canvas").first.bounding_box()
            times = []
            for k, (a, b) in enumerate(((0.3, 0.6), (0.2, 0.8), (0.4, 0.5))):
                store.clear_selection() if k else None
                page.wait_for_timeout(500)
                page.mouse.move(canvas["x"] + canvas["width"] * a, canvas["y"] + canvas["height"] * a)
                page.mouse.down()
                page.mouse.move(canvas["x"] + canvas["width"] * b, canvas["y"] + canvas["height"] * b, steps=5)
                t = time.perf_counter()
                page.mouse.up()
                _wait(lambda: len(store.selection) > 0)
                t_store = time.perf_counter() - t
                expected = f"{len(store.selected_rows()):,} of {n:,} images selected"
                page.get_by_text(expected).wait_for(timeout=60_000)
                page.locator(".tabulator").last.locator(".tabulator-row").first.wait_for(timeout=60_000)
                times.append((len(store.selection), t_store, time.perf_counter() - t))
            out["box_select"] = times
            browser.close()
    finally:
        server.stop()
    out["rerender_s"] = rerender_time(results)
    out["document_s"], out["document_models"] = document_build(results)
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args(argv)
    logging.getLogger("tornado.access").setLevel(logging.ERROR)  # the synthetic images' 404s
    for n in args.sizes:
        r = measure(n, args.chromium)
        rerender = "—" if r["rerender_s"] is None else f"{r['rerender_s'] * 1000:.0f} ms"
        print(f"{n:>9,} points: results built {r['build_results_s']:.1f} s; page load cold "
              f"{r['page_load_cold_s']:.1f} s, warm {r['page_load_warm_s']:.1f} s ({r['page_models']} models in "
              f"the page); session document built in {r['document_s']:.2f} s ({r['document_models']} models); "
              f"map re-rendered after a zoom in {rerender}", flush=True)
        for rows, t_store, t_table in r["box_select"]:
            print(f"           box select {rows:>9,} rows: store {t_store * 1000:.0f} ms, table shown "
                  f"{t_table * 1000:.0f} ms", flush=True)


if __name__ == "__main__":
    main()
