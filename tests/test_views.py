"""Level 2: the views without a browser — set the store, read the widgets; call the downloads."""
import asyncio
import html
import io
import zipfile

import numpy as np
import pandas as pd
import panel as pn
import pytest

from bulk_panel.compute.thumbs import ThumbnailCache
from bulk_panel.server.jupyter import explore
from bulk_panel.state import ResultsStore
from bulk_panel.views import (Dashboard, Downloads, HoverPreview, LabelSummary, LabelTools, ScatterView,
                              SelectionTable, shared_results)

from helpers import drawn_images, free_port, listening, results_with_vectors, synthetic_results, wait_until


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


def test_table_configuration_stays_when_its_rows_change():
    """A Tabulator whose configuration changes is rebuilt in the browser (rows arriving meanwhile
    are dropped): the selection and suggestion tables keep theirs from no rows to some and back."""
    from bulk_panel.views.learning import SuggestionsView

    store = ResultsStore(results=results_with_vectors(300))
    tables = {"selection": SelectionTable(store=store).table, "suggestions": SuggestionsView(store=store).table}
    models = {name: table.get_root() for name, table in tables.items()}
    configurations = lambda: {name: dict(model.configuration) for name, model in models.items()}
    first = configurations()
    assert all(len(table.value) == 0 for table in tables.values())
    for label, name in [("cluster 1", "owls"), ("cluster 2", "cats")]:
        store.select_labels([label])
        assert len(tables["selection"].value) > 0 and configurations() == first
        store.relabel(name)
    store.learn()
    assert len(tables["suggestions"].value) > 0 and configurations() == first
    store.clear_selection()
    assert len(tables["selection"].value) == 0 and configurations() == first


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


def test_datashaded_map_mixes_label_colours_as_count_cat_does(store):
    """The datashaded map (a count and three colour sums per pixel) draws what datashader's
    count_cat + shade draws, zooms with its range stream, and shows the selection on top."""
    import datashader as ds
    import datashader.transfer_functions as tf
    import holoviews as hv

    view = ScatterView(store=store, rasterize_above=10)
    pn.panel(view).get_root()
    codes, names = store.label_codes()
    frame = pd.DataFrame({"x": store.frame.x, "y": store.frame.y,
                          "label": pd.Categorical.from_codes(codes, categories=list(names))})
    x_range, y_range = (float(frame.x.min()), float(frame.x.quantile(0.8))), (float(frame.y.min()), float(frame.y.max()))
    canvas = ds.Canvas(plot_width=120, plot_height=90, x_range=x_range, y_range=y_range)
    expected = tf.dynspread(tf.shade(canvas.points(frame, "x", "y", ds.count_cat("label")), color_key=store.colors,
                                     min_alpha=90), threshold=0.6, max_px=3)
    image = view._map_image(view.frame_version, x_range=x_range, y_range=y_range, width=120, height=90)
    assert isinstance(image, hv.RGB) and image.bounds.lbrt() == (x_range[0], y_range[0], x_range[1], y_range[1])
    got = np.ascontiguousarray(image.data[::-1]).view(np.uint32)[..., 0]
    drawn = (expected.data >> 24) > 0
    assert drawn.sum() > 100 and np.array_equal(got[drawn], expected.data[drawn]) and not got[~drawn].any()

    view.ranges.event(x_range=x_range, y_range=y_range)  # a zoom: the map's own stream
    assert view._image_memo[0][2] == x_range
    assert not view._highlight_image(view.selection_version).data[..., 3].any()  # nothing selected
    store.select_box(x_range[0], y_range[0], x_range[1], y_range[1] - 0.5 * (y_range[1] - y_range[0]))
    alpha = view._highlight_image(view.selection_version, x_range=x_range, y_range=y_range, width=120,
                                  height=90).data[::-1, :, 3]  # bottom row first, as the canvas counts
    assert alpha.any()
    # only where selected points are (dynspread may add up to 2 px): the rest of the map stays visible
    selected = store.frame.iloc[store.selected_rows()]
    counts = canvas.points(selected, "x", "y", ds.count()).data
    near = np.zeros_like(counts, dtype=bool)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near |= np.roll(np.roll(counts > 0, dy, axis=0), dx, axis=1)
    assert not alpha[~near].any() and (~near).sum() > 1000


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
    root, paths, hashes = drawn_images(tmp_path)
    store = ResultsStore(results=synthetic_results(len(paths), paths=paths, hashes=hashes, image_root=root))
    downloads = Downloads(store=store)
    store.selection = np.array([0, 2])
    csv = pd.read_csv(downloads.csv.callback())
    assert list(csv.path) == [paths[0], paths[2]]
    downloads.scope = "all"
    assert len(pd.read_parquet(downloads.parquet.callback())) == len(paths)
    with zipfile.ZipFile(asyncio.run(downloads.zip.callback())) as zf:
        labels = store.frame.label.iloc[[0, 2]].tolist()
        assert sorted(zf.namelist()) == sorted(f"{l}/{p.split('/')[-1]}" for l, p in zip(labels, [paths[0], paths[2]]))


def test_dashboard_and_explore_render(tmp_path):
    root, paths, hashes = drawn_images(tmp_path)
    results = synthetic_results(len(paths), paths=paths, hashes=hashes, image_root=root)
    thumbs = ThumbnailCache(tmp_path / "cache")
    dash = Dashboard(store=ResultsStore(results=results), thumbnails=thumbs, thumbnails_url=None)
    assert hashes[0] in thumbs
    pn.panel(dash).get_root()
    dash.page()
    dash.store.selection = np.array([1])
    assert dash.table.table.value["thumb"].iloc[0].startswith("data:image/jpeg;base64,")
    dash.store.focus = 1
    assert isinstance(dash.preview._image(1, dash.store.frame)[0], pn.pane.JPG)
    path = results.save(tmp_path / "r.parquet")
    assert explore(path).store.n_rows == len(paths)


def test_box_select_fills_the_table_at_100k():
    """A box on a 100k-point map selects exactly the points inside it, and the table shows
    them (up to its limit). Its time, in Chromium, is measured by ``python -m benchmarks.bench_ui``."""
    store = ResultsStore(results=synthetic_results(100_000, clusters=12))
    view = ScatterView(store=store)
    table = SelectionTable(store=store)
    pn.panel(view).get_root()
    f = store.frame
    for q in (0.1, 0.3, 0.5):
        x0, x1 = f.x.quantile([0.5 - q, 0.5 + q])
        y0, y1 = f.y.quantile([0.5 - q, 0.5 + q])
        view.bounds.event(bounds=(x0, y0, x1, y1))
        inside = np.flatnonzero(f.x.between(x0, x1).to_numpy() & f.y.between(y0, y1).to_numpy())
        np.testing.assert_array_equal(np.sort(store.selection), inside)
        assert len(table.table.value) == min(len(inside), store.table_limit) > 0


def test_relabel_updates_table_summary_and_map_colours(store):
    table = SelectionTable(store=store).table
    summary = LabelSummary(store=store).table
    view = ScatterView(store=store)
    pn.panel(view).get_root()
    store.select_labels(["cluster 0"])
    store.relabel("owls")
    assert set(table.value["label"]) == {"owls"} and len(table.value) == len(store.selection)
    assert summary.value.set_index("label").loc["owls", "count"] == len(store.selection)
    points = view._points().dframe()  # a code per point, into the palette of the map's colours
    palette = view._points().opts.get().kwargs["cmap"]
    assert {palette[int(c)] for c in points["code"][points["label"] == "owls"]} == {store.colors["owls"]}
    store.undo()
    assert set(table.value["label"]) == {"cluster 0"}


def test_hover_picks_the_nearest_point_in_both_modes(store):
    for rasterize_above in (20_000, 10):
        view = ScatterView(store=store, rasterize_above=rasterize_above)
        pn.panel(view).get_root()
        f = store.frame
        row = 7
        view.pointer.event(x=float(f.x.iloc[row]) + 1e-4, y=float(f.y.iloc[row]))
        assert store.hover == row
        view.pointer.event(x=1e4, y=1e4)  # far from every point: the preview keeps the last one
        assert store.hover == row
        store.hover = None
    preview = HoverPreview(store=store)
    assert preview._caption(None).startswith("Point at")
    name = f.path.iloc[3].rsplit("/", 1)[-1]
    assert preview._caption(3) == f"{name}\n{f.label.iloc[3]}"  # '<3>' in the name stays as text (Str pane)
    root = pn.panel(preview).get_root()
    assert root is not None


def test_chooser_shows_counts_and_summary_has_thumbnails(store):
    tools = LabelTools(store=store)
    n = int((store.frame.label == "cluster 1").sum())
    assert tools.chooser.options[f"cluster 1 ({n})"] == "cluster 1"
    tools.chooser.value = ["cluster 1"]
    assert store.selected_labels == ["cluster 1"]
    assert set(SelectionTable(store=store).table.value["label"]) == {"cluster 1"}
    summary = LabelSummary(store=store).table
    assert list(summary.value.columns) == LabelSummary.COLUMNS
    assert summary.formatters["thumb"]["urlPrefix"] == "/thumbs/"
    expected = store.label_summary()["content_hash"].tolist()
    assert summary.value["thumb"].tolist() == expected


def test_load_rebuilds_map_and_registers_images(tmp_path, store):
    root, paths, hashes = drawn_images(tmp_path)
    thumbs = ThumbnailCache(tmp_path / "cache")
    dash = Dashboard(store=store, thumbnails=thumbs, rasterize_above=100)
    pn.panel(dash).get_root()
    assert dash.scatter.rasterized
    store.load(synthetic_results(len(paths), paths=paths, hashes=hashes, image_root=root))
    assert hashes[0] in thumbs and not dash.scatter.rasterized
    assert dash.scatter._built_rasterized is False  # the plot was rebuilt as plain points
    assert dash.tools.save_button.disabled
    dash.scatter.bounds.event(bounds=(-100, -100, 100, 100))
    assert len(store.selection) == len(paths)


def test_shared_results_read_once_per_file_version(tmp_path):
    path = synthetic_results(50).save(tmp_path / "r.parquet")
    a, b = Dashboard.from_path(path), Dashboard.from_path(path)
    shared = shared_results(path)
    assert shared is shared_results(path)
    assert a.store.results is not b.store.results and a.store.frame is b.store.frame  # shared until an edit
    a.store.select_labels(["cluster 0"])
    a.store.relabel("mine")
    assert a.store.frame is not b.store.frame and "mine" not in b.store.frame.label.tolist()
    a.store.save_labels()
    assert "mine" not in shared.frame.label.tolist() and shared_results(path) is not shared
    assert "mine" not in b.store.frame.label.tolist()
    assert "mine" in Dashboard.from_path(path).store.frame.label.tolist()  # a new file version, read again
    # the process keeps one version per file, however many saves
    a.store.relabel("mine again")
    a.store.save_labels()
    shared_results(path)
    import panel as pn
    versions = [k for k in pn.state.cache if isinstance(k, tuple) and str(path.resolve()) in str(k[0])]
    assert len(versions) == 1


def test_text_panes_escape_untrusted_text(store):
    from bulk_panel.views import text_pane

    model = text_pane("odd/<img src=x onerror=alert(1)>.png").get_root()
    assert "<img" not in model.text and "&lt;img" not in model.text.replace("&amp;lt;img", "")
    store.message = "<b onmouseover=alert(2)>x</b>"
    tools = pn.panel(LabelTools(store=store)).get_root()
    assert tools is not None
    bound = text_pane(store.param.message)
    assert "&amp;lt;b onmouseover" in bound.get_root().text


def test_a_crafted_results_file_reaches_nothing_outside_its_folder(tmp_path):
    """Paths in a results file are data: thumbnails and zips never read outside image_root."""
    import zipfile

    from PIL import Image

    from bulk_panel.compute.cache import content_hash
    from bulk_panel.compute.results import build_frame
    from bulk_panel.compute.thumbs import ThumbnailCache, write_image_zip

    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (8, 8), "red").save(root / "ok.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "secret.png")
    (root / "link.png").symlink_to(tmp_path / "secret.png")
    rels = ["ok.png", "../secret.png", str(tmp_path / "secret.png"), "link.png"]
    hashes = [content_hash(rel.encode()) for rel in rels]
    frame = build_frame(rels, hashes, np.full((4, 2), 8), np.zeros((4, 2)), [0] * 4, np.ones(4), np.zeros(4), ["a"] * 4)
    thumbs = ThumbnailCache(tmp_path / "cache")
    assert thumbs.register(root, frame) == 1
    assert thumbs.get(hashes[0]) is not None
    assert all(thumbs.get(h) is None for h in hashes[1:])
    buffer = io.BytesIO()
    assert write_image_zip(buffer, frame, root) == ["a/ok.png"]
    assert zipfile.ZipFile(buffer).namelist() == ["a/ok.png"]


def test_zip_route_streams_the_sessions_selection(tmp_path):
    """Served, the zip button streams /exports/<token>/images.zip: the session's selected images
    as label/filename; an unknown or malformed token is a 404."""
    import urllib.error
    import urllib.request

    from bulk_panel.server import ROUTES
    from bulk_panel.views import EXPORTS_URL, shared_exports

    root, paths, hashes = drawn_images(tmp_path)
    store = ResultsStore(results=synthetic_results(len(paths), paths=paths, hashes=hashes, image_root=root))
    downloads = Downloads(store=store, exports_url=EXPORTS_URL)
    assert isinstance(downloads.zip, pn.widgets.Button) and downloads.zip.disabled  # nothing selected yet
    store.selection = np.array([0, 2])
    assert not downloads.zip.disabled
    port = free_port()
    server = pn.serve({"x": lambda: pn.pane.Markdown("x")}, port=port, address="127.0.0.1", threaded=True,
                      show=False, extra_patterns=ROUTES)
    try:
        base = f"http://127.0.0.1:{port}"
        assert wait_until(lambda: listening(port), timeout=10)  # the thread binds the port a moment later
        with urllib.request.urlopen(base + downloads.zip_url, timeout=10) as response:
            assert response.headers["Content-Type"] == "application/zip"
            data = response.read()
        labels = store.frame["label"].tolist()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            assert sorted(zf.namelist()) == sorted(f"{labels[i]}/{paths[i].split('/')[-1]}" for i in (0, 2))
            assert zf.read(f"{labels[2]}/{paths[2].split('/')[-1]}") == (root / paths[2]).read_bytes()
        for bad in ("/exports/" + "A" * 32 + "/images.zip", "/exports/../../etc/passwd", "/exports/x/images.zip"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + bad, timeout=10)
            assert err.value.code == 404
    finally:
        server.stop()
    token = downloads.zip_url.split("/")[2]
    assert shared_exports()[token] is store


def test_more_like_this_duplicates_gallery_and_outliers_views():
    """The tools tabs: more like this (gallery, map overlay, select), duplicates (groups, keep
    marks, select drops, CSV), cluster gallery (escaped), colour by outlier score."""

    from bulk_panel.views import ClusterGallery, DuplicatesView, SimilarGallery

    results = results_with_vectors()
    hostile = "<img src=x onerror=alert(1)>"
    results.frame = results.frame.assign(label=np.where(results.frame.cluster.to_numpy() == 0, hostile,
                                                        results.frame.label.to_numpy()))
    dash = Dashboard(store=ResultsStore(results=results))
    pn.panel(dash).get_root()
    store = dash.store
    assert dash.more_button.disabled
    store.focus = 0
    assert not dash.more_button.disabled
    asyncio.run(dash._more_like_this())
    assert dash.tabs.active == dash._tab_of["similar"] and set(store.similar[:2]) == {1, 2}
    html_text = dash.similar._html(store.similar, store.similar_scores)
    assert html_text.count("<img ") == 1 + store.similar_k and "this image" in html_text
    similar_points = dash.scatter._similar(store.similar)
    assert len(similar_points) == store.similar_k
    dash.similar.select_button.clicks += 1
    assert list(store.selection) == [0, *store.similar]

    asyncio.run(dash.duplicates._find())
    table = dash.duplicates.table.value
    assert set(table.loc[table.group == table.group.iloc[0], "row"]) == {0, 1, 2}
    dash.duplicates._select_drops()
    assert set(store.selection) == set(table.loc[~table.keep, "row"])
    csv = pd.read_csv(dash.duplicates._csv())
    assert list(csv.columns) == ["group", "path", "label", "kind", "similarity", "action"]
    assert (csv.action == "keep").sum() == table.group.nunique()

    gallery = dash.gallery._html(store.frame, 4)
    assert hostile not in gallery and html.escape(hostile) in gallery
    assert isinstance(ClusterGallery(store=store), ClusterGallery) and isinstance(
        SimilarGallery(store=store), SimilarGallery) and isinstance(DuplicatesView(store=store), DuplicatesView)

    dash.scatter.color_by = "outlier score"
    points = dash.scatter._points()
    assert "outlier_score" in points.vdims[0].name or "outlier_score" in [d.name for d in points.vdims]
    dash.explore._split()  # whatever it finds, it reports in one line
    assert store.message


def test_warm_datashader_compiles_once_per_process_in_the_background():
    from bulk_panel.views import warm_datashader

    thread = warm_datashader()
    thread.join(timeout=120)
    assert not thread.is_alive() and warm_datashader() is thread  # one thread per process, finished


def test_a_map_opened_before_its_results_shows_them_when_they_come():
    """A page that opens before the pipeline's results (a served folder): once they are loaded,
    the map's ranges cover the new points (not the empty map's default range)."""
    from bokeh.document import Document
    from bokeh.models import Plot

    store = ResultsStore()
    view = ScatterView(store=store)
    doc = Document()
    doc.add_root(pn.panel(view).get_root(doc))
    results = synthetic_results(18)
    store.load(results)
    plots = [m for m in doc.models if isinstance(m, Plot)]
    assert plots
    x, y = results.frame["x"], results.frame["y"]
    plot = plots[-1]
    assert plot.x_range.start <= x.min() and plot.x_range.end >= x.max()
    assert plot.y_range.start <= y.min() and plot.y_range.end >= y.max()
