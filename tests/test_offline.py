"""The served dashboard on a network with no internet: every script, style sheet and font comes
from the server itself. Chromium aborts, and records, each request to a host other than
127.0.0.1; the page must then be whole: nothing aborted or failed, the style sheets the page's
models name all the server's, the page's, Tabulator's and Panel's styles applied, the map
drawn. Each way of serving it: ``pn.serve`` of :func:`session_page`, ``bulk-panel serve`` and
``panel serve app.py``."""
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from helpers import REPO, chromium, free_port, interrupt, serving, status_of, synthetic_results, wait_until

pytestmark = pytest.mark.ui

ACCENT = "rgb(63, 111, 181)"  # the dashboard's accent, #3f6fb5

# the URL of every style sheet the page's Bokeh models name (Panel can change one after load)
MODEL_STYLESHEETS = """() => [...new Set([...Bokeh.documents[0].all_models]
    .filter(m => m.type === "ImportedStyleSheet").map(m => String(m.url)))]"""

# distinct colours among a sample of the canvas's pixels (a blank canvas has one)
CANVAS_COLOURS = """c => { const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const seen = new Set(); for (let i = 0; i < d.length; i += 4 * 97) seen.add(d[i] << 16 | d[i + 1] << 8 | d[i + 2]);
    return seen.size; }"""

STYLE = "(e, names) => Object.fromEntries(names.map(n => [n, getComputedStyle(e)[n]]))"


def offline_page(browser):
    """A page that reaches only 127.0.0.1; returns (page, requests aborted, requests failed)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    aborted, failed = [], []

    def only_local(route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("requestfailed", lambda request: failed.append(f"{request.url} ({request.failure})"))
    return page, aborted, failed


def wait_idle(page) -> None:
    page.wait_for_function("() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle",
                           timeout=60_000)


def open_dashboard(page, url: str) -> None:
    page.goto(url, timeout=120_000)
    page.wait_for_selector(".tabulator", timeout=60_000)
    page.wait_for_selector("canvas", timeout=60_000)
    wait_idle(page)


def visit_tools(page) -> None:
    """Open every tool tab and the Explore section, then come back to the selection: a tab's
    content joins the page, and leaves the screen, while the page is live."""
    shows = {"Similar": "Select these", "Gallery": "Each label's most representative images",
             "Duplicates": "Find duplicates", "Selection": "images selected"}
    for tab, text in shows.items():
        page.locator(".bk-tab", has_text=tab).click()
        page.get_by_text(text).first.wait_for(state="visible", timeout=60_000)
    page.get_by_text("Explore", exact=True).click()
    page.get_by_text("Show outliers").wait_for(state="visible", timeout=60_000)
    wait_idle(page)


def assert_offline_and_styled(page, aborted: list, failed: list) -> None:
    assert not aborted, aborted
    assert not failed, failed
    sheets = page.evaluate(MODEL_STYLESHEETS)
    assert sheets and not [s for s in sheets if urlsplit(s).netloc], sheets
    # the page's header bar and fonts
    header = page.locator(".bp-header").evaluate(STYLE, ["display", "height", "backgroundColor"])
    assert header == {"display": "flex", "height": "44px", "backgroundColor": ACCENT}
    font = page.locator("body").evaluate(STYLE, ["fontFamily"])["fontFamily"]
    assert font.endswith("sans-serif"), font  # the design's font stack, not the browser's serif default
    # Tabulator's style sheet
    assert page.locator(".tabulator").first.evaluate(STYLE, ["position"]) == {"position": "relative"}
    assert page.locator(".tabulator-header").first.evaluate(STYLE, ["fontWeight"]) == {"fontWeight": "700"}
    # the map is drawn
    assert page.locator("canvas").first.evaluate(CANVAS_COLOURS) > 5


def test_served_dashboard_asks_no_other_host():
    from bulk_panel.server.session import session_page

    results = synthetic_results(500, clusters=5, seed=2)
    with serving({"bulk_panel": lambda: session_page(results)}) as base, chromium() as browser:
        page, aborted, failed = offline_page(browser)
        open_dashboard(page, base + "bulk_panel")
        visit_tools(page)
        assert_offline_and_styled(page, aborted, failed)


@pytest.mark.parametrize("how", ["bulk-panel serve", "panel serve app.py"])
def test_served_by_each_command_asks_no_other_host(tmp_path, cache_dir, how):
    results = synthetic_results(300, clusters=4, seed=5).save(tmp_path / "results.parquet")
    port = free_port()
    if how == "bulk-panel serve":
        command, path = [sys.executable, "-m", "bulk_panel", "serve", str(results), "--port", str(port)], "bulk_panel"
    else:
        command = [sys.executable, "-m", "panel", "serve", str(REPO / "app.py"), "--address", "127.0.0.1",
                   "--port", str(port), "--allow-websocket-origin", f"127.0.0.1:{port}",
                   "--plugins", "bulk_panel.server", "--args", str(results)]
        path = "app"
    log = tmp_path / "server.log"
    with log.open("w") as err:
        server = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:  # Bokeh's own script: the server is up, and no session is made for it
        assert server.poll() is None, log.read_text()[-2000:]
        try:
            return status_of(base + "/static/js/bokeh.min.js") == 200
        except OSError:
            return False

    try:
        assert wait_until(answers, timeout=180), f"{how} did not answer in 180 s"
        with chromium() as browser:
            page, aborted, failed = offline_page(browser)
            open_dashboard(page, f"{base}/{path}")
            visit_tools(page)
            assert_offline_and_styled(page, aborted, failed)
    finally:
        interrupt(server, 5)
