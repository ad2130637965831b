"""Level 3: the served dashboard in Debian's Chromium through Playwright (no `playwright install`)."""
import io
import os
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_state import synthetic_results

pytestmark = pytest.mark.ui

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    """Serve a dashboard per session on synthetic results; yields (url, stores made)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    import panel as pn

    from bulk_panel.state import ResultsStore
    from bulk_panel.views import ROUTES, Dashboard

    results = synthetic_results(2_000, clusters=5, seed=3)
    dashboards = []

    def app():
        dashboards.append(Dashboard(store=ResultsStore(results=results)))
        return dashboards[-1].template()

    pn.extension("tabulator")
    port = _free_port()
    server = pn.serve(app, port=port, address="127.0.0.1", threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}"], extra_patterns=ROUTES)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield f"http://127.0.0.1:{port}/", dashboards, browser
            browser.close()
    finally:
        server.stop()


def _wait(predicate, timeout=15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(url)
    page.wait_for_selector(".tabulator", timeout=60_000)
    page.wait_for_selector("canvas", timeout=60_000)
    page.wait_for_timeout(1500)  # Bokeh lays the plot out after the canvas appears
    return page


def test_box_select_fills_table_and_csv_download(served):
    url, dashboards, browser = served
    page = _open(browser, url)
    store = dashboards[-1].store
    canvas = page.locator("canvas").first
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] * 0.25)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.75, steps=10)
    page.mouse.up()
    assert _wait(lambda: len(store.selection) > 0), "the box select never reached the store"
    # the store's selection is exactly the frame's points inside the bounds the stream received
    f = store.frame
    x0, y0, x1, y1 = dashboards[-1].scatter.bounds.bounds
    inside = np.flatnonzero(((f.x >= x0) & (f.x <= x1) & (f.y >= y0) & (f.y <= y1)).to_numpy())
    assert list(inside) == list(store.selection)
    assert 0 < len(store.selection) < len(f)
    # the page shows the count the store holds
    counter = page.get_by_text(f"of {len(f):,} images selected")
    counter.wait_for(timeout=10_000)
    assert _wait(lambda: counter.inner_text().startswith(f"{len(store.selected_rows()):,} of"))
    rows = page.locator(".tabulator-row")
    assert _wait(lambda: rows.count() > 0)
    with page.expect_download() as info:
        page.get_by_role("button", name="CSV").click()
    csv = pd.read_csv(info.value.path())
    assert len(csv) == len(store.selected_rows())
    assert set(csv.path) == set(f.path.iloc[store.selected_rows()])
    page.close()


def test_two_sessions_are_isolated(served):
    url, dashboards, browser = served
    first = _open(browser, url)
    second = _open(browser, url)
    a, b = dashboards[-2].store, dashboards[-1].store
    assert a is not b
    a.select_labels(["cluster 1"])
    assert len(b.selection) == 0
    first.close()
    second.close()
