"""The numbers the page shows: the label chooser's counts (the labels' rows in the selection), the
count line and the selection table after label edits, and the duplicates' kinds and groups."""
import asyncio
import html
import re

import numpy as np
import pandas as pd
import pytest

from bulk_panel.compute.results import Results, build_frame
from bulk_panel.compute.similar import duplicate_groups
from bulk_panel.state import ResultsStore

from helpers import chromium, dashboard_sessions, in_session, serving, synthetic_results, wait_for_plot, wait_until

COMIC, RACER, NOISE = "comic book / birdhouse", "racer / sports car", "noise"
BOX = (-0.5, -0.5, 1.5, 1.5)  # holds 26 of the 30 comic books and 1 of the 12 racers
CHIP = re.compile(r"^(.*) \(((?:0 of )?\d[\d,]*)\)$", re.S)


def counted_results() -> Results:
    """50 rows: 30 comic books (26 in BOX), 12 racers (1 in BOX), 8 noise (none in BOX); row 1 is
    an exact copy of row 0 (same content hash) and row 2 a near copy (almost the same vector)."""
    rng = np.random.default_rng(5)
    inside = rng.uniform(0, 1, (27, 2))
    xy = np.concatenate([inside[:26], rng.uniform(10, 11, (4, 2)), inside[26:], rng.uniform(20, 21, (11, 2)),
                         rng.uniform(-21, -20, (8, 2))])
    labels = [COMIC] * 30 + [RACER] * 12 + [NOISE] * 8
    n = len(labels)
    hashes = [f"{i:032x}" for i in range(n)]
    hashes[1] = hashes[0]
    frame = build_frame(
        paths=[f"shelf {i % 4}/item {i}.png" for i in range(n)], hashes=hashes, sizes=np.full((n, 2), 64), xy=xy,
        clusters=[0] * 30 + [1] * 12 + [-1] * 8, probabilities=np.full(n, 0.8), outlier_scores=np.zeros(n),
        labels=labels,
    )
    vectors = rng.normal(size=(n, 16)).astype(np.float32)
    vectors[1] = vectors[0]
    vectors[2] = vectors[0] + 0.01 * rng.normal(size=16)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Results(frame=frame, meta={}, _embeddings=vectors)


def parse(texts) -> dict[str, str]:
    """Chooser texts ("label (count)", HTML-escaped) → {label: count text}."""
    out = {}
    for text in texts:
        match = CHIP.match(html.unescape(text))
        assert match, text
        out[match[1]] = match[2]
    return out


def options(store) -> dict[str, str]:
    return parse(store.param.selected_labels.names)


def shown(tools) -> dict[str, str]:
    """The chips the page's chooser shows: its Bokeh model's value (option texts)."""
    (model, _), = tools.chooser._models.values()
    assert set(model.value) <= set(model.options), (model.value, model.options)  # no stale chip text
    return parse(model.value)


def count_line(view) -> tuple[int, int]:
    """The selection table's count line, "**N** of M images selected", as (N, M)."""
    import panel as pn

    text = pn.panel(view)[0].object
    match = re.match(r"\*\*([\d,]+)\*\* of ([\d,]+) images selected", text)
    assert match, text
    return int(match[1].replace(",", "")), int(match[2].replace(",", ""))


# ---- level 1: the store ---------------------------------------------------------------------------

def test_chooser_counts_each_label_in_the_selection():
    store = ResultsStore(results=counted_results())
    assert options(store) == {COMIC: "30", RACER: "12", NOISE: "8"}  # nothing selected: every row
    assert store.select_box(*BOX) == 27
    assert store.selected_labels == [COMIC, RACER]
    assert options(store) == {COMIC: "26", RACER: "1", NOISE: "0 of 8"}
    # the counts are of the map selection: narrowing the chooser changes neither them nor the selection
    store.selected_labels = [RACER]
    assert options(store) == {COMIC: "26", RACER: "1", NOISE: "0 of 8"} and len(store.selected_rows()) == 1
    # chosen labels that add all their rows count all their rows; the choice stays as it is
    store.only_selected = False
    assert options(store) == {COMIC: "30", RACER: "12", NOISE: "8"} and store.selected_labels == [RACER]
    assert len(store.selected_rows()) == 27 + 11
    store.only_selected = True
    store.clear_selection()
    assert options(store) == {COMIC: "30", RACER: "12", NOISE: "8"}


def test_chooser_counts_follow_selections_set_directly_and_relabels_from_the_chooser():
    store = ResultsStore(results=counted_results())
    store.selection = np.arange(25, 35)  # 5 comic books, 5 racers
    assert options(store) == {COMIC: "5", RACER: "5", NOISE: "0 of 8"} and store.selected_labels == [COMIC, RACER]
    store.clear_selection()
    store.selected_labels = [NOISE]  # nothing selected: the chooser picks rows by label
    assert store.relabel("shelves") == 8
    assert options(store)["shelves"] == "8" and store.selected_labels == ["shelves"]


def test_chooser_counts_stay_cheap_and_right_on_many_rows_and_labels():
    """Many labels, many rows: each label's count in a selection is its rows there."""
    n, k = 200_000, 300
    rng = np.random.default_rng(2)
    codes = rng.integers(0, k, n)
    results = synthetic_results(n, clusters=3, seed=2)
    results.frame = results.frame.assign(label=pd.Series([f"tag {c:03d}" for c in codes], dtype="str"))
    store = ResultsStore(results=results)
    rows = np.flatnonzero(rng.random(n) < 0.3)
    store.select_rows(rows)
    expected = np.bincount(codes[rows], minlength=k)
    got = options(store)
    assert len(got) == k
    assert all(got[f"tag {c:03d}"] == (f"{expected[c]:,}" if expected[c] else f"0 of {(codes == c).sum():,}")
               for c in range(k))


# ---- level 2: the views on one store ---------------------------------------------------------------

def _agree(store, tools, table_view) -> None:
    """Chips, count line, selected rows and table rows tell the same story."""
    chips = {label: int(count.replace(",", "")) for label, count in shown(tools).items()}
    rows = store.selected_rows()
    value = table_view.table.value
    assert sorted(chips) == sorted(store.selected_labels)
    assert sum(chips.values()) == len(rows) == len(value) == count_line(table_view)[0]
    assert count_line(table_view)[1] == store.n_rows
    assert sorted(value.index) == sorted(rows)
    for label, count in chips.items():
        assert (value["label"] == label).sum() == count


def test_labelling_26_of_27_selected_keeps_chips_count_line_and_table_in_agreement():
    import panel as pn

    from bulk_panel.views import LabelTools, SelectionTable

    store = ResultsStore(results=counted_results())
    tools, table_view = LabelTools(store=store), SelectionTable(store=store)
    pn.panel(tools).get_root()
    assert store.select_box(*BOX) == 27
    assert shown(tools) == {COMIC: "26", RACER: "1"}
    _agree(store, tools, table_view)

    store.selected_labels = [COMIC]  # narrow to the 26 comic books (as a chip removed in the page)
    assert shown(tools) == {COMIC: "26"}
    _agree(store, tools, table_view)

    assert store.relabel("birdhouse") == 26
    assert len(store.selection) == 27 and "birdhouse" in store.selected_labels
    assert options(store) == {COMIC: "0 of 4", RACER: "1", "birdhouse": "26", NOISE: "0 of 8"}
    assert shown(tools)["birdhouse"] == "26"
    _agree(store, tools, table_view)

    assert store.undo()
    assert options(store) == {COMIC: "26", RACER: "1", NOISE: "0 of 8"}
    assert COMIC in store.selected_labels
    _agree(store, tools, table_view)

    assert store.redo()
    _agree(store, tools, table_view)


def test_the_page_chooser_keeps_what_the_user_chose_when_counts_change():
    import panel as pn

    from bulk_panel.views import LabelTools

    store = ResultsStore(results=counted_results())
    tools = LabelTools(store=store)
    pn.panel(tools).get_root()
    tools.chooser.value = [RACER]  # chosen in the page, nothing selected: all racers
    assert store.selected_labels == [RACER] and shown(tools) == {RACER: "12"}
    store.selection = np.arange(25, 35)  # a new selection (5 comic books, 5 racers) fills the chooser
    assert store.selected_labels == [COMIC, RACER] and shown(tools) == {COMIC: "5", RACER: "5"}
    tools.chooser.value = [RACER]
    assert shown(tools) == {RACER: "5"} and len(store.selected_rows()) == 5
    store.only_selected = False  # the counts change; the user's choice stays
    assert tools.chooser.value == [RACER] and store.selected_labels == [RACER]
    assert shown(tools) == {RACER: "12"} and len(store.selected_rows()) == 10 + 7
    store.only_selected = True
    events = []
    store.param.watch(lambda event: events.append(event.new), "selected_labels")
    store.select_box(*BOX)  # new texts and new labels reach the chooser in one go: no echo back
    assert events == [[COMIC, RACER]] and shown(tools) == {COMIC: "26", RACER: "1"}


# ---- duplicates: kinds are text, groups integers ------------------------------------------------------

def test_duplicate_groups_types_with_and_without_groups():
    results = counted_results()
    groups = duplicate_groups(results.frame, results.embeddings, 0.97)
    assert len(groups) and set(groups["kind"]) == {"exact", "near"}
    assert all(isinstance(kind, str) for kind in groups["kind"])
    assert pd.api.types.is_integer_dtype(groups["group"]) and pd.api.types.is_integer_dtype(groups["row"])
    assert pd.api.types.is_bool_dtype(groups["keep"])
    none = duplicate_groups(synthetic_results(30).frame, None, None)  # every content hash differs
    assert len(none) == 0 and list(none.columns) == list(groups.columns)
    for column in ("group", "row"):
        assert pd.api.types.is_integer_dtype(none[column]), none.dtypes
    assert pd.api.types.is_bool_dtype(none["keep"]) and pd.api.types.is_float_dtype(none["similarity"])
    assert not pd.api.types.is_numeric_dtype(none["kind"]) and not pd.api.types.is_numeric_dtype(none["path"])


def test_duplicates_table_holds_text_kinds_and_integer_groups():
    import panel as pn

    from bulk_panel.views import DuplicatesView

    view = DuplicatesView(store=ResultsStore(results=counted_results()))
    pn.panel(view).get_root()  # drawn before the first search, as in the page
    asyncio.run(view._find())
    value = view.table.value
    assert set(value["kind"]) == {"exact", "near"} and all(isinstance(k, str) for k in value["kind"])
    assert pd.api.types.is_integer_dtype(value["group"])
    assert set(value.loc[value["group"] == value["group"].iloc[0], "row"]) == {0, 1, 2}
    # the cells are drawn as text: no number format left over from the empty table
    (table, _), = view.table._models.values()
    formats = {c["field"]: c.get("formatter") for c in table.configuration["columns"]}
    assert formats["kind"] == "plaintext" and formats["group"] == "plaintext"


# ---- level 3: the page in Chromium ---------------------------------------------------------------------

@pytest.mark.ui
def test_chips_count_line_and_duplicates_read_right_in_the_page(tmp_path):
    build, sessions = dashboard_sessions(tmp_path, lambda: ResultsStore(results=counted_results()))
    with chromium() as browser, serving({"counts": build}) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "counts")
        page.wait_for_selector(".tabulator", timeout=60_000)
        page.wait_for_selector("canvas", timeout=60_000)
        wait_for_plot(page)
        doc, store = sessions[-1]
        chips = page.locator(".choices__list--multiple .choices__item")

        def chip_texts():
            return sorted(t.replace("Remove item", "").strip() for t in chips.all_inner_texts())

        def counted(n):
            return page.get_by_text(f"{n} of 50 images selected").count() == 1

        def expected_chips():  # each chosen label's rows in the selection, from the store
            labels = store.frame.label.to_numpy()[store.selection]
            return sorted(f"{label} ({int((labels == label).sum())})" for label in store.selected_labels)

        in_session(doc, lambda: store.select_box(*BOX))
        assert wait_until(lambda: chip_texts() == [f"{COMIC} (26)", f"{RACER} (1)"], timeout=30), chip_texts()
        assert wait_until(lambda: counted(27), timeout=30)
        in_session(doc, lambda: setattr(store, "selected_labels", [COMIC]))  # narrowed to the comic books
        assert wait_until(lambda: chip_texts() == [f"{COMIC} (26)"] and counted(26), timeout=30), chip_texts()
        box = page.get_by_placeholder("new or existing label")
        box.fill("birdhouse")
        box.press("Enter")
        page.get_by_role("button", name="Label selection").click()
        assert wait_until(lambda: (store.frame.label == "birdhouse").sum() == 26, timeout=30)
        assert wait_until(lambda: chip_texts() == expected_chips(), timeout=30), chip_texts()
        assert "birdhouse (26)" in chip_texts()
        assert wait_until(lambda: counted(len(store.selected_rows())), timeout=30)
        page.get_by_role("button", name="Undo").click()
        assert wait_until(lambda: "birdhouse" not in store.frame.label.tolist(), timeout=30)
        assert wait_until(lambda: f"{COMIC} (26)" in chip_texts(), timeout=30), chip_texts()
        assert wait_until(lambda: counted(len(store.selected_rows())), timeout=30)

        page.locator(".bk-tab", has_text="Duplicates").click()
        page.get_by_role("button", name="Find duplicates").click()
        kinds = page.locator(".tabulator-cell[tabulator-field='kind']")
        assert wait_until(lambda: kinds.count() >= 3, timeout=30)
        assert wait_until(lambda: set(kinds.all_inner_texts()) == {"exact", "near"}, timeout=30), kinds.all_inner_texts()
        groups = page.locator(".tabulator-cell[tabulator-field='group']").all_inner_texts()
        assert groups and all(re.fullmatch(r"\d+", g) for g in groups), groups
        page.close()
