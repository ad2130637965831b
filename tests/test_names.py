"""Suggested cluster names: computed with how many members agree, kept in the results' meta
beside neutral labels, accepted one at a time or in bulk (undoable), shown in the Labels table
and the static page; and how often they match known groups (WordNet hypernyms)."""
import io
import re

import numpy as np
import pandas as pd
import pytest

from bulk_panel import load_results
from bulk_panel.compute.names import (WORDNET_NOUNS, class_words, cluster_suggestions, imagenet_names,
                                      main_classes, name_match_rate, precision_by_agreement, read_suggestions,
                                      suggestions_meta, words_of)
from bulk_panel.state import ResultsStore

from helpers import chromium, serving, synthetic_results, wait_until

needs_wordnet = pytest.mark.skipif(not WORDNET_NOUNS.exists(), reason="Debian's wordnet-base is not installed")
TABBY, SANDAL, PIZZA = 281, 774, 963
HOSTILE_SUGGESTION = "<img src=x onerror=alert(3)> / jersey"


def _classes(per_row):
    """Top-2 predictions per row: (the given class, p 0.8) and (class 0, p 0.1)."""
    idx = np.array([[c, 0] for c in per_row])
    prob = np.tile([0.8, 0.1], (len(per_row), 1))
    return idx, prob


def _suggested(n=300, seed=3):
    """Synthetic results (neutral labels) whose meta suggests names for clusters 0, 1 and 2."""
    results = synthetic_results(n, clusters=4, seed=seed)
    sizes = results.frame["cluster"].value_counts()
    results.meta["suggestions"] = {
        "0": {"name": "lighthouse", "classes": [437], "agreement": 0.41, "size": int(sizes[0])},
        "1": {"name": "sandal", "classes": [774], "agreement": 0.8, "size": int(sizes[1])},
        "2": {"name": HOSTILE_SUGGESTION, "classes": [610], "agreement": 0.65, "size": int(sizes[2])},
    }
    return results


# ---- level 1: compute ---------------------------------------------------------------------------

def test_folder_words():
    assert words_of("signs_and_symbols") == {"sign", "symbol"}
    assert words_of("t-shirt_top") == {"t-shirt", "shirt", "top"}
    assert words_of("Animals") == {"animal"} and words_of("glass") == {"glass"}


def test_suggestions_name_clusters_and_measure_agreement():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, -1])
    classes = _classes([TABBY, TABBY, PIZZA, SANDAL, SANDAL, SANDAL, SANDAL, SANDAL, TABBY, PIZZA])
    top = main_classes(labels, classes)
    assert top[0][0] == TABBY and PIZZA in top[0] and top[1] == [SANDAL] and -1 not in top
    got = cluster_suggestions(labels, classes)
    assert set(got) == {0, 1, 2}  # noise gets none
    names = imagenet_names()
    assert got[0]["name"] == f"{names[TABBY]} / {names[PIZZA]}" and got[1]["name"] == "sandal"
    assert got[2]["name"] == "sandal (2)"  # the same name again gets a number: names stay distinct
    for c, s in got.items():
        assert 0.0 <= s["agreement"] <= 1.0 and s["size"] == int((labels == c).sum())
    # the share of members whose own top-1 class is in the suggestion
    assert got[0]["agreement"] == 1.0 and got[2]["classes"] == [SANDAL] and got[2]["agreement"] == 0.75
    assert cluster_suggestions(labels, None) == {}  # no ImageNet head: no suggestions


def test_meta_round_trip_and_older_files():
    got = cluster_suggestions(np.array([0, 0, 1]), _classes([TABBY, TABBY, SANDAL]))
    read = read_suggestions({"suggestions": suggestions_meta(got)})
    assert read == {c: {"name": s["name"], "agreement": s["agreement"], "size": s["size"]} for c, s in got.items()}
    # older files: cluster_names only (they were the labels then) → suggestions of unknown agreement
    old = read_suggestions({"cluster_names": {"0": "tabby", "1": "cluster 1", "x": "bad", "-1": "noise"}})
    assert old == {0: {"name": "tabby", "agreement": None, "size": None}}
    # a file's meta is untrusted: what does not parse is left out, nothing raises
    odd = read_suggestions({"suggestions": {"0": {"name": "  a  b "}, "1": "plain", "2": {"name": ""},
                                            "3": {"name": "x", "agreement": 7, "size": -2}}})
    assert odd == {0: {"name": "a b", "agreement": None, "size": None}, 3: {"name": "x", "agreement": None, "size": None}}
    assert read_suggestions(None) == read_suggestions({"suggestions": "nonsense"}) == {}


def test_precision_by_agreement():
    pairs = [{"agreement": a, "size": 10, "match": m} for a, m in [(0.2, False), (0.4, True), (0.6, True), (0.8, False)]]
    rows = {r["min_agreement"]: r for r in precision_by_agreement(pairs, (0.0, 0.5, 0.9))}
    assert rows[0.0]["clusters"] == 4 and rows[0.0]["precision"] == 0.5 and rows[0.0]["images"] == 1.0
    assert rows[0.5]["clusters"] == 2 and rows[0.5]["precision"] == 0.5 and rows[0.5]["share"] == 0.5
    assert rows[0.9]["clusters"] == 0 and rows[0.9]["precision"] is None


@needs_wordnet
def test_class_words_climb_the_hypernyms():
    assert {"tabby", "cat", "feline", "animal"} <= class_words(TABBY)
    assert {"sandal", "shoe", "footwear"} <= class_words(SANDAL) and "animal" not in class_words(SANDAL)
    assert "food" in class_words(PIZZA)


@needs_wordnet
def test_name_match_rate_counts_clusters_and_images():
    labels = np.array([0] * 6 + [1] * 3 + [-1])
    truth = np.array(["animals"] * 5 + ["food"] + ["food"] * 3 + ["animals"], dtype=object)
    result = name_match_rate(labels, _classes([TABBY] * 6 + [SANDAL] * 3 + [TABBY]), truth)
    assert result["clusters"] == 2 and result["matched"] == 1 and result["rate"] == 0.5
    assert result["image_rate"] == pytest.approx(6 / 9)
    assert [(p["cluster"], p["folder"], p["match"]) for p in result["pairs"]] == [(0, "animals", True), (1, "food", False)]
    assert all(p["agreement"] == 1.0 for p in result["pairs"])
    assert [r["clusters"] for r in result["by_agreement"]] == [2] * len(result["by_agreement"])


# ---- level 1: state ------------------------------------------------------------------------------

def test_store_lists_suggestions_for_neutral_labels_only():
    store = ResultsStore(results=_suggested())
    table = store.suggestions()
    assert list(table["label"]) == ["cluster 0", "cluster 1", "cluster 2"] == list(table.index)
    assert table["agreement"].between(0, 1).all() and "noise" not in table.index
    assert set(store.frame["label"]) == {"cluster 0", "cluster 1", "cluster 2", "cluster 3", "noise"}  # labels neutral
    store.rename_label("cluster 1", "shoes")  # a renamed cluster has no suggestion any more
    assert "cluster 1" not in store.suggestions().index
    store.undo()
    assert "cluster 1" in store.suggestions().index
    assert ResultsStore(results=synthetic_results(50)).suggestions().empty  # no meta: none


def test_accept_one_suggestion_relabels_undoably_and_exports():
    store = ResultsStore(results=_suggested())
    members = (store.frame["label"] == "cluster 0").to_numpy()
    colour = store.colors["cluster 0"]
    assert store.accept_suggestion("cluster 0") == members.sum()
    assert (store.frame["label"].to_numpy()[members] == "lighthouse").all() and store.colors["lighthouse"] == colour
    assert "cluster 0" not in store.suggestions().index and "accepted" in store.message
    csv = pd.read_csv(io.BytesIO(store.to_csv_bytes("all").getvalue()))
    assert (csv["label"] == "lighthouse").sum() == members.sum()
    assert store.accept_suggestion("cluster 3") == 0 and "No suggestion" in store.message  # none for it
    assert store.undo()
    assert (store.frame["label"].to_numpy()[members] == "cluster 0").all() and "cluster 0" in store.suggestions().index
    assert store.redo() and (store.frame["label"] == "lighthouse").sum() == members.sum()


def test_accepting_a_name_that_is_already_a_label_merges_only_when_alone():
    store = ResultsStore(results=_suggested())
    store.rename_label("cluster 3", "sandal")  # the user's own label, the same as cluster 1's suggestion
    before = (store.frame["label"] == "sandal").sum() + (store.frame["label"] == "cluster 1").sum()
    # bulk acceptance never merges: cluster 1 is skipped and the message says so
    assert store.accept_suggestions(min_agreement=0.7) == 0 and "skipped" in store.message
    assert "cluster 1" in set(store.frame["label"])
    # accepted on its own, it merges into the existing label (one edit, undoable)
    store.accept_suggestion("cluster 1")
    assert (store.frame["label"] == "sandal").sum() == before and "merged" in store.message
    store.undo()
    assert "cluster 1" in set(store.frame["label"])


def test_bulk_accept_by_agreement_is_one_undoable_edit():
    store = ResultsStore(results=_suggested())
    original = store.frame["label"].to_numpy(dtype=object).copy()
    assert store.accept_suggestions(min_agreement=0.6) == 2  # sandal (0.8) and the hostile name (0.65)
    assert {"sandal", HOSTILE_SUGGESTION} <= set(store.frame["label"]) and "cluster 0" in set(store.frame["label"])
    assert list(store.suggestions().index) == ["cluster 0"]
    assert store.accept_suggestions(min_agreement=0.9) == 0 and "No suggestions" in store.message
    assert store.undo()  # one step undoes the whole bulk acceptance
    assert (store.frame["label"].to_numpy(dtype=object) == original).all()
    assert store.accept_suggestions(min_agreement=0) == 3 and store.suggestions().empty  # 0: all of them


def test_old_files_with_cluster_names_still_load(tmp_path):
    results = synthetic_results(120, clusters=3, seed=2)
    results.meta = {"cluster_names": {"0": "tabby", "1": "sandal", "2": "cluster 2"}}  # an older file's meta
    path = results.save(tmp_path / "old.parquet")
    store = ResultsStore(results=load_results(path))
    table = store.suggestions()
    assert list(table.index) == ["cluster 0", "cluster 1"] and table["agreement"].isna().all()
    assert store.accept_suggestions(min_agreement=0.5) == 0  # unknown agreement reaches no threshold
    assert store.accept_suggestion("cluster 1") > 0 and "sandal" in set(store.frame["label"])
    # labels that were the names then (the old files' labels) have nothing left to accept
    named = results.frame.assign(label=results.frame["cluster"].map({-1: "noise", 0: "tabby", 1: "sandal", 2: "cluster 2"}))
    results.frame = named
    assert ResultsStore(results=results).suggestions().empty


def test_the_shared_page_carries_the_suggestions(tmp_path):
    from bulk_panel.share import read_bundle, write_bundle

    results = _suggested(200)
    write_bundle(results, tmp_path / "bundle", thumb_size=0)
    store = ResultsStore(results=read_bundle(tmp_path / "bundle"))
    assert store.suggestions()["suggestion"].tolist() == ["lighthouse", "sandal", HOSTILE_SUGGESTION]
    assert store.accept_suggestion("cluster 1") > 0


# ---- level 2: the Labels table -------------------------------------------------------------------

def test_labels_table_shows_suggestions_and_accepts_them():
    from bulk_panel.views import LabelSummary

    store = ResultsStore(results=_suggested())
    view = LabelSummary(store=store)
    view.__panel__()
    table = view.table
    assert list(table.value.columns) == LabelSummary.COLUMNS
    assert table.formatters["suggestion"] == "plaintext" and table.formatters["accept"] == "plaintext"
    shown = table.value.set_index("label")
    size = int((store.frame["label"] == "cluster 0").sum())
    assert shown.loc["cluster 0", "suggestion"] == f"lighthouse · 41% of {size}"
    assert shown.loc["cluster 0", "accept"] == LabelSummary.ACCEPT
    assert shown.loc["cluster 3", "suggestion"] == "" and shown.loc["noise", "accept"] == ""
    # a click on "accept" gives the label its suggestion; a click elsewhere in the row selects it
    row = list(table.value["label"]).index("cluster 0")
    view._on_click(type("E", (), {"row": row, "column": "accept", "value": LabelSummary.ACCEPT})())
    assert "lighthouse" in table.value["label"].tolist() and "cluster 0" not in table.value["label"].tolist()
    row = list(table.value["label"]).index("cluster 3")
    view._on_click(type("E", (), {"row": row, "column": "accept", "value": ""})())  # no suggestion: selects
    assert set(store.frame["label"].iloc[store.selection]) == {"cluster 3"}
    # the bulk control: its button says how many it takes, and takes them
    view.min_agreement = 0.6
    assert view.accept_button.label == "Accept 2 suggestions ≥ 60%" and not view.accept_button.disabled
    view.accept_button.clicks += 1
    assert {"sandal", HOSTILE_SUGGESTION} <= set(table.value["label"])
    assert view.accept_button.disabled and not view.bulk.visible  # nothing left to accept
    store.undo()
    assert view.bulk.visible and view.accept_button.label == "Accept 2 suggestions ≥ 60%"
    view.min_agreement = 0
    assert view.accept_button.label == "Accept all suggestions (2)"
    assert not LabelSummary(store=ResultsStore(results=synthetic_results(50))).bulk.visible  # none: hidden


# ---- level 3: the served page in Chromium ---------------------------------------------------------

@pytest.mark.ui
def test_accept_a_suggestion_in_the_browser():
    from bulk_panel.views import Dashboard, shared_thumbnails

    results, made = _suggested(), []

    def build():
        made.append(Dashboard(store=ResultsStore(results=results), thumbnails=shared_thumbnails()))
        return made[-1].page()

    with serving({"names": build}) as url, chromium() as browser:
        dialogs = []
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url + "names")
        page.wait_for_selector(".tabulator", timeout=60_000)
        tab = page.locator(".bk-tab", has_text=re.compile(r"^Labels$"))
        if tab.count():  # the Labels table sits in a tab beside the selection
            tab.first.click()
        row = page.locator(".tabulator-row", has_text="lighthouse · 41%")
        row.wait_for(timeout=60_000)
        store = made[-1].store
        page.locator(".tabulator-row", has_text=f"{HOSTILE_SUGGESTION} · 65%").wait_for(timeout=30_000)  # as text
        row.locator(".tabulator-cell[tabulator-field='accept']").click()
        assert wait_until(lambda: "lighthouse" in set(store.frame["label"]), timeout=30)
        label = page.locator(".tabulator-cell[tabulator-field='label']", has_text=re.compile(r"^lighthouse$"))
        label.wait_for(timeout=30_000)  # the accepted name is the label in the Labels table now
        assert page.get_by_role("button", name="Accept 1 suggestion ≥ 70%").count() == 1  # sandal, 80%
        assert not dialogs and page.locator("img[src='x']").count() == 0
        page.close()
