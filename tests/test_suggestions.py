"""The Suggest tab (views/learning.py): learning on, a page of the least certain predictions,
accepting a page or everything above a confidence, correcting one; and in Chromium, the whole
loop on a served page down to the CSV."""
from types import SimpleNamespace

import numpy as np
import pytest

from bulk_panel.views import Dashboard, SuggestionsView, source_line

from helpers import chromium, dashboard_sessions, in_session, open_section, serving, wait_for_plot, wait_until

from test_learning import grouped_store, label_rows, sources


def learning_view(page_size=20):
    store, truth = grouped_store()
    view = SuggestionsView(store=store, thumbnails_url=None, page_size=page_size)
    for name in ("kind 0", "kind 1"):
        label_rows(store, np.flatnonzero(truth == name)[:3], name)
    return store, truth, view


def test_learning_on_fills_the_page_least_certain_first_and_relearns_after_edits():
    store, truth, view = learning_view()
    assert len(view.table.value) == 0  # nothing predicted yet
    store.learning = True
    page = view.table.value
    confidence = store.frame["confidence"].to_numpy()
    assert len(page) == 20 and page.index.tolist() == store.suggestion_rows()[:20].tolist()
    assert (np.diff(confidence[page.index]) >= 0).all() and set(page["label"]) <= {"kind 0", "kind 1"}
    assert source_line(store) == "**6** labelled by you · **234** predicted · **0** not labelled yet"
    label_rows(store, np.flatnonzero(truth == "kind 2")[:3], "kind 2")  # a new name: learnt at once
    assert "kind 2" in set(store.frame["label"][sources(store) == "prediction"])


def test_accept_a_page_then_everything_sure_then_correct_one():
    store, truth, view = learning_view()
    store.learning = True
    first = view.table.value.index.to_numpy()
    view.accept_page.clicks += 1
    assert (sources(store)[first] == "person").all()
    assert not set(view.table.value.index) & set(first)  # the next page
    view.min_confidence = 0.6
    assert view.accept_sure.name == "Accept all ≥ 60%"
    predicted = sources(store) == "prediction"
    sure = np.flatnonzero(predicted & (store.frame["confidence"].to_numpy() >= 0.6))
    assert len(sure)
    view.accept_sure.clicks += 1
    assert (sources(store)[sure] == "person").all()  # then learnt again from them: new predictions
    row = int(view.table.value.index[0])
    view._corrected(SimpleNamespace(column="label", row=0, value="  kind   3 "))
    assert store.frame["label"].iloc[row] == "kind 3" and sources(store)[row] == "person"
    view._corrected(SimpleNamespace(column="label", row=0, value="   "))
    assert "cannot be empty" in store.message
    assert store.undo() and store.frame["label"].iloc[row] != "kind 3"


def test_the_dashboard_builds_the_tab_when_opened():
    store, _, _ = learning_view()
    dashboard = Dashboard(store=store, thumbnails_url=None)
    assert "suggestions" not in dashboard.__dict__
    dashboard.open_tab("suggest")
    assert "suggestions" in dashboard.__dict__


# ---- level 3: the page in Chromium ---------------------------------------------------------------------

@pytest.mark.ui
def test_label_two_clusters_accept_a_page_and_the_csv_says_whose_labels(tmp_path):
    import pandas as pd

    build, sessions = dashboard_sessions(tmp_path, lambda: grouped_store()[0])
    with chromium() as browser, serving({"learn": build}) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "learn")
        page.wait_for_selector(".tabulator", timeout=60_000)
        wait_for_plot(page)
        doc, store = sessions[-1]
        box = page.get_by_placeholder("new or existing label")
        for cluster, name in (("cluster 0", "kind A"), ("cluster 1", "kind B")):  # name two clusters
            in_session(doc, lambda: (store.clear_selection(), setattr(store, "selected_labels", [cluster])))
            assert wait_until(lambda: len(store.selected_rows()) > 0)
            box.fill(name)
            box.press("Enter")
            page.get_by_role("button", name="Label selection").click()
            assert wait_until(lambda: name in set(store.frame.label), timeout=30)
        named = store.source_counts()["person"]
        page.locator(".bk-tab", has_text="Suggest").click()
        page.locator(".bp-learn input[type='checkbox']").check()
        assert wait_until(lambda: store.source_counts()["prediction"] == 240 - named, timeout=30), (
            store.learning, store.message, store.source_counts())
        predicted = page.locator(".tabulator-cell[tabulator-field='confidence']")
        assert wait_until(lambda: predicted.count() > 0, timeout=30)
        assert page.get_by_text(f"{named} labelled by you").count() == 1
        page.get_by_role("button", name="Accept this page").click()
        assert wait_until(lambda: store.source_counts()["person"] == named + 50, timeout=30)
        assert wait_until(lambda: page.get_by_text(f"{named + 50} labelled by you").count() == 1, timeout=30)
        open_section(page, "Download")
        page.get_by_role("button", name="all", exact=True).click()
        with page.expect_download() as info:
            page.get_by_role("button", name="CSV").click()
        csv = pd.read_csv(info.value.path())
        assert csv["label_source"].value_counts().to_dict() == {"person": named + 50, "prediction": 190 - named}
        assert (csv.loc[csv.label_source == "person", "confidence"] == 1).all()
        assert csv.loc[csv.label_source == "prediction", "confidence"].between(0, 1).all()
        page.close()
