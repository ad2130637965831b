"""Level 3: the first screen, in Chromium at 1280×800 and 1600×1000: the map and the first rows of
the selection table in view without scrolling, nothing clipped, the page never scrolls as a whole."""
import os

import numpy as np
import pytest

from bulk_panel.compute.cache import content_hash
from bulk_panel.compute.results import Results, build_frame

from helpers import REPO, box_select, chromium, demo_subset, serving, wait_for_plot

pytestmark = pytest.mark.ui

SIZES = [(1280, 800), (1600, 1000)]
SHOTS = REPO / "docs" / "screenshots"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The dashboard on 36 real demo images (three folders, a blob each on the map)."""
    from bulk_panel.state import ResultsStore
    from bulk_panel.views import Dashboard, shared_thumbnails

    folder = demo_subset(tmp_path_factory.mktemp("layout") / "images", per_category=12)
    paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    group = np.array([["animals", "food", "transportation"].index(p.split("/")[0]) for p in paths])
    rng = np.random.default_rng(0)
    xy = np.array([[0, 0], [6, 1], [3, 6]], dtype=float)[group] + rng.normal(scale=0.8, size=(len(paths), 2))
    frame = build_frame(
        paths=paths, hashes=[content_hash((folder / p).read_bytes()) for p in paths], sizes=np.full((len(paths), 2), 64),
        xy=xy, clusters=group, probabilities=np.full(len(paths), 0.9), outlier_scores=rng.random(len(paths)),
        labels=[f"cluster {g}" for g in group],
    )
    results = Results(frame=frame, meta={"image_root": str(folder)})
    thumbs = shared_thumbnails()
    thumbs.folder = tmp_path_factory.mktemp("cache") / "thumbs"  # not the user's cache
    made = []

    def build():
        import panel as pn

        made.append(Dashboard(store=ResultsStore(results=results), thumbnails=thumbs))
        made[-1].doc = pn.state.curdoc  # to change the store on the session's own event loop
        return made[-1].page()

    with serving({"layout": build}) as url, chromium() as browser:
        yield url + "layout", made, browser


def _inside(box, width, height) -> bool:
    return box is not None and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width \
        and box["y"] + box["height"] <= height


def _clipped(locator, right: float) -> list:
    """The texts under ``locator`` (shadow roots included) that run past ``right`` (pixels) or
    overflow their own box."""
    return locator.evaluate_all(
        """(els, right) => els.filter(e => e.innerText.trim() && (e.getBoundingClientRect().right > right + 1
                                        || e.scrollWidth > e.clientWidth + 1)).map(e => e.innerText.slice(0, 60))""",
        right)


@pytest.mark.parametrize("width,height", SIZES)
def test_map_and_first_table_rows_in_view(served, width, height):
    url, made, browser = served
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    page.wait_for_selector("canvas", timeout=60_000)
    page.wait_for_selector(".tabulator", timeout=60_000)
    wait_for_plot(page)
    store = made[-1].store
    assert box_select(page, store, (0.1, 0.1), (0.9, 0.9)), "the box select never reached the store"
    total = len(store.frame)
    page.get_by_text(f"{len(store.selected_rows()):,} of {total:,} images selected").wait_for(timeout=30_000)
    first = page.locator(".tabulator-row").first
    first.wait_for(timeout=30_000)
    name = first.locator(".tabulator-cell[tabulator-field='name']")
    thumb = first.locator(".tabulator-cell[tabulator-field='thumb'] img")
    thumb.wait_for(timeout=30_000)
    assert name.inner_text().strip() in {p.rsplit("/", 1)[-1] for p in store.frame.path}
    # the map and the first row (thumbnail and name) lie inside the window, no scrolling
    assert _inside(page.locator("canvas").first.bounding_box(), width, height)
    assert _inside(thumb.bounding_box(), width, height) and _inside(name.bounding_box(), width, height)
    # the page itself never scrolls: as tall and as wide as the window
    scroll = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    assert scroll[0] <= width and scroll[1] <= height, scroll
    # the map takes the room it can: most of the window's height, and wider than the table's column
    canvas = page.locator("canvas").first.bounding_box()
    assert canvas["height"] >= 0.6 * height and canvas["width"] >= 0.3 * width, canvas
    # nothing clipped: the status line wraps, the Labels table shows every column
    store.message = "41 outliers selected (top 2.0% by outlier score) — " * 2
    page.get_by_text("41 outliers selected", exact=False).first.wait_for(timeout=30_000)
    sidebar = page.locator(".bp-sidebar").bounding_box()
    assert not _clipped(page.locator(".bp-sidebar pre"), sidebar["x"] + sidebar["width"])
    page.locator(".bk-tab", has_text="Labels").click()
    header = page.locator(".tabulator-col[tabulator-field='mean_probability']")
    header.wait_for(timeout=30_000)
    table = header.locator("xpath=ancestor::div[contains(@class, 'tabulator')][1]")
    assert header.bounding_box()["x"] + header.bounding_box()["width"] <= table.bounding_box()["x"] + table.bounding_box()["width"] + 1
    page.locator(".bk-tab", has_text="Selection").click()
    if os.environ.get("BULK_PANEL_SCREENSHOTS"):  # docs/screenshots, made on purpose only
        page.screenshot(path=str(SHOTS / f"dashboard-{width}x{height}.png"))
    # a selection across many labels: their chips scroll in a box, the labelling tools stay in view
    def many_labels():
        for row in range(0, 24, 2):
            store.select_rows([row])
            store.relabel(f"label {row:02d}")
        store.select_rows(np.arange(total))

    made[-1].doc.add_next_tick_callback(many_labels)  # as the page's own events would change it
    page.locator(".choices__item--selectable", has_text="label 22 (1)").first.wait_for(timeout=30_000)
    chips = page.locator(".choices__inner").first.bounding_box()
    assert chips["height"] <= 0.25 * height, chips
    assert _inside(page.get_by_role("button", name="Label selection").bounding_box(), width, height)
    page.close()
