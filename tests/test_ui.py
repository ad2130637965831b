"""Level 3: the served dashboard in Debian's Chromium through Playwright (no `playwright install`)."""
import os
import re
import zipfile

import numpy as np
import pandas as pd
import pytest

from helpers import (
    ARGS, CHROMIUM, HOSTILE_LABEL, HOSTILE_NAME, free_port, images_settled, page_point, real_results,
    synthetic_results, wait_for_plot, wait_until, box_select, selection_table, label_summary, open_section,
)

pytestmark = pytest.mark.ui

SHOWN = 30_000  # ms the page may take to show what the server changed (a loaded 2-core machine took over 10 s)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Serve a dashboard per session: ``/synthetic`` (2,000 blobs) and ``/real`` (six real images,
    hostile names); yields (base url, {app: dashboards made}, browser)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    import panel as pn

    from bulk_panel.state import ResultsStore
    from bulk_panel.server import ROUTES
    from bulk_panel.views import Dashboard

    from bulk_panel.views import shared_thumbnails

    data = {"synthetic": synthetic_results(2_000, clusters=5, seed=3),
            "real": real_results(tmp_path_factory.mktemp("real"))}
    thumbs = shared_thumbnails()  # the one the thumbnail route serves from
    thumbs.folder = tmp_path_factory.mktemp("cache") / "thumbs"  # not the user's cache
    made = {name: [] for name in data}

    def app(name):
        def build():
            made[name].append(Dashboard(store=ResultsStore(results=data[name]), thumbnails=thumbs))
            return made[name][-1].page()
        return build

    pn.extension("tabulator")
    port = free_port()
    server = pn.serve({name: app(name) for name in data}, port=port, address="127.0.0.1", threaded=True,
                      show=False, websocket_origin=[f"127.0.0.1:{port}"], extra_patterns=ROUTES)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            yield f"http://127.0.0.1:{port}/", made, browser
            browser.close()
    finally:
        server.stop()



def _open(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(url)
    page.wait_for_selector(".tabulator", timeout=60_000)
    page.wait_for_selector("canvas", timeout=60_000)
    wait_for_plot(page)  # every model drawn and synced, the plot laid out where it stays
    return page


def test_box_select_fills_table_and_csv_download(served):
    url, made, browser = served
    dashboards = made["synthetic"]
    page = _open(browser, url + "synthetic")
    store = dashboards[-1].store
    assert box_select(page, store), "the box select never reached the store"
    # the store's selection is exactly the frame's points inside the bounds the stream received
    f = store.frame
    x0, y0, x1, y1 = dashboards[-1].scatter.bounds.bounds
    inside = np.flatnonzero(((f.x >= x0) & (f.x <= x1) & (f.y >= y0) & (f.y <= y1)).to_numpy())
    assert list(inside) == list(store.selection)
    assert 0 < len(store.selection) < len(f)
    # the page shows the count the store holds
    counter = page.get_by_text(f"of {len(f):,} images selected")
    counter.wait_for(timeout=SHOWN)
    assert wait_until(lambda: counter.inner_text().startswith(f"{len(store.selected_rows()):,} of"))
    rows = selection_table(page).locator(".tabulator-row")
    assert wait_until(lambda: rows.count() > 0)
    open_section(page, "Download")
    with page.expect_download() as info:
        page.get_by_role("button", name="CSV").click()
    csv = pd.read_csv(info.value.path())
    assert len(csv) == len(store.selected_rows())
    assert set(csv.path) == set(f.path.iloc[store.selected_rows()])
    page.close()


def test_two_sessions_are_isolated(served):
    url, made, browser = served
    dashboards = made["synthetic"]
    first = _open(browser, url + "synthetic")
    second = _open(browser, url + "synthetic")
    a, b = dashboards[-2].store, dashboards[-1].store
    assert a is not b
    a.select_labels(["cluster 1"])
    assert len(b.selection) == 0
    first.close()
    second.close()


def _selection_labels(page) -> list[str]:
    return selection_table(page).locator(".tabulator-cell[tabulator-field='label']").all_inner_texts()


def test_chooser_filters_table_and_relabel_recolours(served):
    url, made, browser = served
    page = _open(browser, url + "synthetic")
    store = made["synthetic"][-1].store
    n = int((store.frame.label == "cluster 2").sum())
    page.locator(".choices input").first.click()
    page.locator(".choices__item--choice", has_text=f"cluster 2 ({n})").click()
    assert wait_until(lambda: store.selected_labels == ["cluster 2"])
    page.get_by_text(f"{n:,} of {len(store.frame):,} images selected").wait_for(timeout=SHOWN)
    assert wait_until(lambda: set(_selection_labels(page)) == {"cluster 2"})
    # relabel what the chooser picked, from the page
    page.get_by_placeholder("new or existing label").fill("owls")
    page.get_by_placeholder("new or existing label").press("Enter")
    page.get_by_role("button", name="Label selection").click()
    assert wait_until(lambda: (store.frame.label == "owls").sum() == n and store.selected_labels == ["owls"])
    assert "cluster 2" not in store.frame.label.tolist()
    summary = label_summary(page)
    owls = summary.locator(".tabulator-row", has_text="owls")
    owls.wait_for(timeout=SHOWN)
    assert owls.locator(".tabulator-cell[tabulator-field='count']").inner_text() == str(n)
    colour = store.colors["owls"]
    rgb = "rgb({}, {}, {})".format(*(int(colour[i:i + 2], 16) for i in (1, 3, 5)))
    cell = owls.locator(".tabulator-cell[tabulator-field='color']")
    painted = cell.evaluate("e => [e, ...e.querySelectorAll('*')].map(x => getComputedStyle(x).backgroundColor)")
    assert rgb in painted, (rgb, painted)
    assert wait_until(lambda: set(_selection_labels(page)) == {"owls"})
    page.close()


#: In the page: count the selection table's rebuilds (a rebuild drops rows that arrive meanwhile)
_COUNT_REBUILDS = """(() => {
  const view = Bokeh.index.query_one(v => v.tabulator != null && v.model.columns.some(c => c.field == 'outlier_score'))
  window.rebuilds = 0
  const render = view.render.bind(view)
  view.render = () => { window.rebuilds += 1; return render() }
})()"""


def test_a_selection_fills_the_table_without_rebuilding_it(served):
    """A selection made from the Labels tab fills the Selection table, hidden meanwhile, and back
    to none: its rows change, the table is never rebuilt (so no update can be lost in a rebuild)."""
    url, made, browser = served
    page = _open(browser, url + "synthetic")
    store = made["synthetic"][-1].store
    page.evaluate(_COUNT_REBUILDS)
    label_summary(page).locator(".tabulator-row", has_text="cluster 1").first.click()
    assert wait_until(lambda: store.selected_labels == ["cluster 1"])
    page.locator(".bk-tab", has_text="Selection").click()
    rows = selection_table(page).locator(".tabulator-row")
    assert wait_until(lambda: rows.count() > 0)  # as many as the table's height shows
    assert set(_selection_labels(page)) == {"cluster 1"}
    page.get_by_role("button", name="Clear selection").click()
    assert wait_until(lambda: len(store.selection) == 0) and wait_until(lambda: rows.count() == 0)
    assert page.evaluate("window.rebuilds") == 0
    page.close()


def test_zip_download_holds_label_filename_entries(served):
    url, made, browser = served
    page = _open(browser, url + "real")
    store = made["real"][-1].store
    label_summary(page).locator(".tabulator-row", has_text="cats").click()
    assert wait_until(lambda: len(store.selection) == 4)
    open_section(page, "Download")
    with page.expect_download() as info:
        page.get_by_role("button", name="Images (zip)").click()
    with zipfile.ZipFile(info.value.path()) as zf:
        assert sorted(zf.namelist()) == ["cats/a.png", "cats/b.png", "cats/c.png", "cats/d.png"]
        assert zf.read("cats/b.png") == (store.results.image_root / "cats/b.png").read_bytes()
    page.close()


def test_hostile_names_and_labels_show_as_text(served):
    url, made, browser = served
    dialogs = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url + "real")
    page.wait_for_selector(".tabulator", timeout=60_000)
    page.wait_for_selector("canvas", timeout=60_000)
    wait_for_plot(page)
    store = made["real"][-1].store
    # the hover preview: point at row 4, placed on the page by the plot's own scales
    px, py = page_point(page, *store.frame[["x", "y"]].iloc[4])
    page.mouse.move(px - 5, py - 5)
    page.mouse.move(px, py, steps=3)
    assert wait_until(lambda: store.hover == 4), store.hover
    name = store.frame.path.iloc[store.hover].rsplit("/", 1)[-1]
    page.get_by_text(f"{name}\n{HOSTILE_LABEL}", exact=False).first.wait_for(timeout=SHOWN)
    label_summary(page).get_by_text(HOSTILE_LABEL, exact=True).click()  # the label shows as text in the summary...
    assert wait_until(lambda: len(store.selection) == 2)
    page.locator(".bk-tab", has_text="Selection").click()
    selection_table(page).get_by_text(HOSTILE_NAME, exact=True).wait_for(timeout=SHOWN)  # ...and table
    page.locator(".choices__item", has_text=f"{HOSTILE_LABEL} (2)").first.wait_for(timeout=SHOWN)  # ...chooser
    # the preview: a row click focuses the image, whose path shows as text
    for _ in range(3):  # the table may redraw under the first click
        selection_table(page).get_by_text(HOSTILE_NAME, exact=True).click()
        if wait_until(lambda: store.focus == 4, timeout=3):
            break
    assert store.focus == 4
    page.get_by_text(f"odd/{HOSTILE_NAME}", exact=False).first.wait_for(timeout=SHOWN)
    images_settled(page)  # an injected image's onerror would have run by now
    assert dialogs == []
    assert page.locator("img[src='x']").count() == 0 and page.locator("b[onmouseover]").count() == 0
    page.close()


def test_more_like_this_and_cluster_gallery_in_the_browser(served):
    """A table row click → 'More like this' → a gallery of the focused image and its neighbours,
    (names as text); 'Select these' selects them; the cluster gallery shows each label's images."""
    url, made, browser = served
    page = _open(browser, url + "real")
    store = made["real"][-1].store
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    label_summary(page).locator(".tabulator-row", has_text="cats").click()
    assert wait_until(lambda: len(store.selection) == 4)
    page.locator(".bk-tab", has_text="Selection").click()
    selection_table(page).locator(".tabulator-row", has_text="b.png").first.click()
    assert wait_until(lambda: store.focus is not None)
    page.get_by_role("button", name="More like this").first.click()
    assert wait_until(lambda: len(store.similar) == 5)
    figures = page.locator("figure")  # the gallery of the focused image and its neighbours
    figures.nth(5).wait_for(timeout=20_000)
    assert figures.count() == 6 and figures.locator("img").count() == 6
    widths = lambda: figures.locator("img").evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
    assert wait_until(lambda: all(width > 0 for width in widths()), timeout=20), widths()  # through the route
    page.get_by_role("button", name="Select these").click()
    assert wait_until(lambda: len(store.selection) == 6)
    page.locator(".bk-tab", has_text="Gallery").click()
    # the cluster gallery's captions are file names (the other tab's, which may stay in the page, are scores)
    named = page.locator("figure").filter(has_text=re.compile(r"\.png$"))
    named.filter(has_text="d.png").wait_for(timeout=20_000)  # a member of 'cats'
    assert wait_until(lambda: named.count() == 6), named.count()  # every label's images: 4 cats + 2 of the other
    assert not dialogs
    page.close()


def test_explore_section_is_made_when_opened(served):
    """The sidebar's Explore tools are not in the first page; opening the section draws them and
    'Show outliers' selects the top outlier scores plus the noise."""
    url, made, browser = served
    page = _open(browser, url + "synthetic")
    store = made["synthetic"][-1].store
    assert page.get_by_role("button", name="Show outliers").count() == 0
    open_section(page, "Explore")
    page.get_by_role("button", name="Show outliers").click()
    expected = len(np.union1d(np.argsort(-store.frame["outlier_score"].to_numpy())[:40],
                              np.flatnonzero(store.frame["cluster"].to_numpy() < 0)))
    assert wait_until(lambda: len(store.selection) == expected > 0)
    page.close()
