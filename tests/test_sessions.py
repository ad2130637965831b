"""Concurrent sessions on one served dashboard: three browser contexts relabel the same
rows differently and each download holds its own labels; while one session runs the pipeline
(on an extra root the operator allowed, after a refused '/etc'), another stays responsive: the
latency of its selections is measured and printed (no timing asserts)."""
import re

import pandas as pd
import pytest

from helpers import chromium, demo_subset, label_summary, open_section, serving, small_pipeline, wait_until


pytestmark = [pytest.mark.ui, pytest.mark.slow]  # the served results come from the real pipeline


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Real results of 18 demo images (real model, UMAP, HDBSCAN) served with ``--allow-root``
    semantics (an extra folder of 60 other, uncached images); yields (url, sessions, browser, extra)."""
    from bulk_panel.server.session import make_dashboard

    base = tmp_path_factory.mktemp("sessions")
    folder = demo_subset(base / "images", per_category=6)
    extra = demo_subset(base / "extra", categories=("people", "plants", "buildings"), per_category=20)
    pipeline = small_pipeline(base / "cache")
    pipeline.source.root = str(folder)
    path = pipeline.run().save(base / "results.parquet")
    sessions = []

    def build():
        dashboard = make_dashboard(path, allowed_roots=[extra], cache_dir=str(base / "cache"))
        sessions.append(dashboard)
        return dashboard.page()

    with chromium() as browser, serving({"app": build}) as url:
        yield url + "app", sessions, browser, extra


def open_session(browser, url, sessions):
    """A fresh browser context (its own cookies, its own Panel session) on the app; (page, dashboard)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    before = len(sessions)
    page.goto(url)
    page.wait_for_selector(".tabulator", timeout=60_000)
    page.wait_for_selector("canvas", timeout=60_000)
    assert wait_until(lambda: len(sessions) == before + 1)
    return page, sessions[-1]


def click_label_row(page, label: str) -> None:
    """Click the label summary's row of exactly ``label`` (suggested names can contain one another:
    'comic book', 'comic book (2)')."""
    cells = label_summary(page).locator(".tabulator-cell[tabulator-field='label']")
    cells.filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")).first.click()


def test_three_sessions_relabel_differently_and_download_their_own_labels(served):
    url, sessions, browser, _ = served
    opened = [open_session(browser, url, sessions) for _ in range(3)]
    stores = [dashboard.store for _, dashboard in opened]
    assert len({id(s) for s in stores}) == 3
    original = stores[0].frame.label.copy()
    target = stores[0].label_summary().sort_values("count", ascending=False).label.iloc[0]
    rows = set(original.index[original == target])
    ours = ["alpha", "beta <b>2</b>", "gamma & co"]
    for page, _ in opened:  # every session selects the same rows...
        click_label_row(page, target)
    for (page, _), store in zip(opened, stores):
        assert wait_until(lambda: set(store.selection) == rows), "a selection never reached its store"
    for (page, _), label in zip(opened, ours):  # ...and gives them its own label
        box = page.get_by_placeholder("new or existing label")
        box.fill(label)
        box.press("Enter")
        page.get_by_role("button", name="Label selection").click()
    for store, label in zip(stores, ours):
        assert wait_until(lambda: set(store.frame.index[store.frame.label == label]) == rows), label
    paths = stores[0].frame.path.tolist()
    for (page, dashboard), label in zip(opened, ours):
        open_section(page, "Download")
        page.get_by_role("button", name="all", exact=True).click()  # every row, not just the selection
        assert wait_until(lambda: dashboard.downloads.scope == "all")
        with page.expect_download() as info:
            page.get_by_role("button", name="CSV").click()
        csv = pd.read_csv(info.value.path(), keep_default_na=False)
        expected = {p: label if i in rows else original[i] for i, p in enumerate(paths)}
        assert dict(zip(csv.path, csv.label)) == expected, label
        assert not (set(ours) - {label}) & set(csv.label)  # nothing of the other sessions
    for page, _ in opened:
        page.context.close()


def test_a_session_stays_responsive_while_another_runs_the_pipeline(served):
    url, sessions, browser, extra = served
    (runner_page, running), (page, watcher) = (open_session(browser, url, sessions) for _ in range(2))
    runner = running.runner
    open_section(runner_page, "Pipeline")  # closed: the served page has results
    folder = runner_page.get_by_placeholder("folder of images on the server")
    # a folder outside what the operator allowed is refused, on one line, in the page
    folder.fill("/etc")
    folder.press("Enter")
    runner_page.get_by_text("refused folder '/etc': it is outside the allowed folders", exact=False).wait_for(timeout=20_000)
    assert not runner.running and runner.results is None

    store, total = watcher.store, len(watcher.store.frame)
    summary = store.label_summary()
    label, count = summary.label.iloc[0], int(summary["count"].iloc[0])

    def select_and_clear() -> None:
        """Select the label's images in the page and clear them, waiting for the count each time."""
        click_label_row(page, label)
        page.get_by_text(f"{count:,} of {total:,} images selected").wait_for(timeout=60_000)
        page.get_by_role("button", name="Clear selection").click()
        page.get_by_text(f"0 of {total:,} images selected").wait_for(timeout=60_000)

    select_and_clear()
    folder.fill(str(extra))
    folder.press("Enter")  # the allowed extra root: the run starts
    assert wait_until(lambda: runner.running, timeout=20), runner.message
    during = 0
    while runner.running:
        select_and_clear()
        during += 1
    assert runner.wait(300) and runner.error == "", runner.message
    runner_page.get_by_text("done: 60 images", exact=False).wait_for(timeout=60_000)
    assert len(running.store.frame) == 60 and len(store.frame) == total  # each session its own results
    assert during, "no selection was made during the run"
    for p in (runner_page, page):
        p.context.close()
