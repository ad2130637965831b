"""Level 2: the views without a browser — set the store, read the widgets; call the downloads."""
import io
import time
import zipfile

import numpy as np
import pandas as pd
import panel as pn
import pytest
from test_state import _real_images, synthetic_results

from bulk_panel.compute.thumbs import ThumbnailCache
from bulk_panel.explore import explore
from bulk_panel.state import ResultsStore
from bulk_panel.views import Dashboard, Downloads, LabelSummary, LabelTools, ScatterView, SelectionTable


@pytest.fixture
def store():
    return ResultsStore(results=synthetic_results(300))


def test_table_follows_selection_and_labels(store):
    table = SelectionTable(store=store).table
    assert len(table.value) == 0
    store.select_box(-4, -4, 4, 4)
    assert list(table.value.index) == list(store.selected_rows())
    assert list(table.value.columns) == SelectionTable.COLUMNS
    assert (table.value["thumb"] == store.frame.content_hash.iloc[store.selected_rows()]).all()
    assert table.pagination == "remote" and table.formatters["name"] == "plaintext"
    store.selected_labels = store.selected_labels[:1]
    assert set(table.value["label"]) == set(store.selected_labels)


def test_row_click_focuses(store):
    view = SelectionTable(store=store)
    store.select_labels(["cluster 2"])
    view._on_click(type("E", (), {"row": 3})())
    assert store.focus == view.table.value.index[3]


def test_map_streams_select_in_data_space(store):
    for rasterize_above in (20_000, 10):  # plain points and datashaded
        view = ScatterView(store=store, rasterize_above=rasterize_above)
        pn.panel(view).get_root()
        f = store.frame
        x0, x1 = f.x.quantile([0.2, 0.7])
        y0, y1 = f.y.quantile([0.3, 0.9])
        view.bounds.event(bounds=(x0, y0, x1, y1))
        inside = (f.x >= x0) & (f.x <= x1) & (f.y >= y0) & (f.y <= y1)
        assert len(store.selection) == inside.sum() > 0
        view.lasso.event(geometry=np.array([[-20, -20], [20, -20], [20, 20], [-20, 20]]))
        assert len(store.selection) == len(f)


def test_summary_click_selects_label_and_tools_relabel(store):
    summary = LabelSummary(store=store)
    assert list(summary.table.value["label"]) == store.sorted_labels(store.frame)
    summary._on_click(type("E", (), {"row": 1})())
    assert set(store.frame.label.iloc[store.selection]) == {"cluster 1"}
    tools = LabelTools(store=store)
    tools.new_label = "birds"
    store.selected_labels = ["cluster 1"]
    tools.relabel_button.clicks += 1
    assert (store.frame.label == "birds").sum() == len(store.selection)
    assert "birds" in summary.table.value["label"].tolist()
    assert "birds" in tools.param.rename_from.objects
    tools.new_label = "  "
    tools.relabel_button.clicks += 1
    assert store.message.startswith("Not done")


def test_downloads_make_bytes(tmp_path):
    root, paths, hashes = _real_images(tmp_path)
    store = ResultsStore(results=synthetic_results(len(paths), paths=paths, hashes=hashes, image_root=root))
    downloads = Downloads(store=store)
    store.selection = np.array([0, 2])
    csv = pd.read_csv(downloads.csv.callback())
    assert list(csv.path) == [paths[0], paths[2]]
    downloads.scope = "all"
    assert len(pd.read_parquet(downloads.parquet.callback())) == len(paths)
    with zipfile.ZipFile(downloads.zip.callback()) as zf:
        labels = store.frame.label.iloc[[0, 2]].tolist()
        assert sorted(zf.namelist()) == sorted(f"{l}/{p.split('/')[-1]}" for l, p in zip(labels, [paths[0], paths[2]]))


def test_dashboard_and_explore_render(tmp_path):
    root, paths, hashes = _real_images(tmp_path)
    results = synthetic_results(len(paths), paths=paths, hashes=hashes, image_root=root)
    thumbs = ThumbnailCache(tmp_path / "cache")
    dash = Dashboard(store=ResultsStore(results=results), thumbnails=thumbs, thumbnails_url=None)
    assert hashes[0] in thumbs
    pn.panel(dash).get_root()
    dash.template()
    dash.store.selection = np.array([1])
    assert dash.table.table.value["thumb"].iloc[0].startswith("data:image/jpeg;base64,")
    dash.store.focus = 1
    assert isinstance(dash.preview._image(1, dash.store.frame)[0], pn.pane.JPG)
    path = results.save(tmp_path / "r.parquet")
    assert explore(path).store.n_rows == len(paths)


def test_box_select_to_table_time_at_100k():
    """Measured, not asserted: stream event → table value at 100k points."""
    store = ResultsStore(results=synthetic_results(100_000, clusters=12))
    view = ScatterView(store=store)
    table = SelectionTable(store=store)
    pn.panel(view).get_root()
    times = []
    f = store.frame
    for q in (0.1, 0.3, 0.5):
        x0, x1 = f.x.quantile([0.5 - q, 0.5 + q])
        y0, y1 = f.y.quantile([0.5 - q, 0.5 + q])
        t = time.perf_counter()
        view.bounds.event(bounds=(x0, y0, x1, y1))
        times.append((len(store.selection), time.perf_counter() - t))
        assert len(table.table.value) == len(store.selected_rows())
    print("\nbox select -> table value at 100k: " + ", ".join(f"{n:,} rows {t * 1000:.0f} ms" for n, t in times))


def test_relabel_updates_table_summary_and_map_colours(store):
    table = SelectionTable(store=store).table
    summary = LabelSummary(store=store).table
    view = ScatterView(store=store)
    pn.panel(view).get_root()
    store.select_labels(["cluster 0"])
    store.relabel("owls")
    assert set(table.value["label"]) == {"owls"} and len(table.value) == len(store.selection)
    assert summary.value.set_index("label").loc["owls", "count"] == len(store.selection)
    points = view._points()
    assert set(points.dframe()["color"][points.dframe()["label"] == "owls"]) == {store.colors["owls"]}
    store.undo()
    assert set(table.value["label"]) == {"cluster 0"}
