"""A selection you can still read: the selected points keep their colours, the rest of the map
fades (plain and datashaded), and nothing fades without a selection.

Level 1: the shading functions on a seeded frame. Level 2: ScatterView on a ResultsStore, what
its elements and Bokeh models hold. Level 3 (``ui``): a datashaded dashboard in Chromium, a box
drawn with the mouse, the map's pixels before and after.
"""
import io

import numpy as np
import pandas as pd
import panel as pn
import pytest

from bulk_panel.state import ResultsStore
from bulk_panel.views import Dashboard, ScatterView
from bulk_panel.views._shading import (FADE, SELECTED_MIN_ALPHA, fade, rgb255, shade_labels, shade_scores,
                                       shade_selection)

from helpers import box_select, chromium, page_point, serving, synthetic_results, wait_for_plot, wait_until

COLOURS = {"red": "#d62628", "blue": "#1f77b3", "green": "#2ba02b"}


def _rgba(image) -> np.ndarray:
    """A datashader image (packed uint32, rows bottom-up) as an (h, w, 4) uint8 array."""
    return np.ascontiguousarray(np.asarray(image.data, dtype=np.uint32)).view(np.uint8).reshape(*image.shape, 4)


def _near(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` grown by ``px`` pixels in every direction."""
    grown = mask.copy()
    for dy in range(-px, px + 1):
        for dx in range(-px, px + 1):
            grown |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return grown


@pytest.fixture
def blobs():
    """Three separate blobs of 3,000 points, one label colour each (x, y, r, g, b, label)."""
    rng = np.random.default_rng(7)
    centres = {"red": (-6, 0), "blue": (0, 5), "green": (6, 0)}
    parts = []
    for label, (cx, cy) in centres.items():
        r, g, b = rgb255(COLOURS[label])
        xy = rng.normal((cx, cy), 1.0, size=(3_000, 2))
        parts.append(pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "r": np.float32(r), "g": np.float32(g),
                                   "b": np.float32(b), "label": label}))
    return pd.concat(parts, ignore_index=True)


# ---- level 1: the shading functions ----------------------------------------------------------------


def test_selected_pixels_keep_their_colour_and_the_rest_fades(blobs):
    import datashader as ds
    import datashader.transfer_functions as tf

    canvas = ds.Canvas(plot_width=160, plot_height=120, x_range=(-10, 10), y_range=(-5, 10))
    selected = (blobs.label == "red").to_numpy() | ((blobs.label == "blue") & (blobs.x < 0)).to_numpy()
    base = tf.dynspread(shade_labels(canvas, blobs), threshold=0.6, max_px=3)  # as the view draws the map
    top = shade_selection(canvas, blobs[selected])
    shown = _rgba(tf.stack(fade(base), top))  # the faded map under the selection, as the page stacks them
    plain = _rgba(base)

    counts = lambda rows: canvas.points(blobs[rows], "x", "y", ds.count()).data > 0
    chosen, left = counts(selected), counts(~selected)
    only_chosen = chosen & ~_near(left, 4)  # away from every unselected point (and its spread)
    only_left = left & ~_near(chosen, 4)
    assert only_chosen.sum() > 200 and only_left.sum() > 200
    for label in ("red", "blue"):  # both selected colours, as they are, and opaque
        where = only_chosen & counts((blobs.label == label).to_numpy())
        assert where.sum() > 50
        rgb = shown[where][:, :3].astype(int)
        assert np.abs(rgb - rgb255(COLOURS[label])).max() <= 3, label
        assert shown[where][:, 3].min() >= SELECTED_MIN_ALPHA
    assert not (shown[only_chosen][:, :3].max(axis=1) < 60).any()  # no dark mass where points are selected
    # the points left out keep their colour, faded: alpha at most FADE of full
    assert shown[only_left][:, 3].max() <= int(FADE * 255) + 1
    green = only_left & counts((blobs.label == "green").to_numpy())
    assert np.abs(shown[green][:, :3].astype(int) - rgb255(COLOURS["green"])).max() <= 3
    # without a selection the map is drawn as it is: none of it faded
    assert plain[only_left][:, 3].min() >= 90 and plain[only_chosen][:, 3].min() >= 90
    assert (shown[..., 3] > 0).sum() >= (plain[..., 3] > 0).sum()  # fading hides no point


def test_a_small_selection_is_spread_and_empty_pixels_stay_clear(blobs):
    import datashader as ds

    canvas = ds.Canvas(plot_width=160, plot_height=120, x_range=(-10, 10), y_range=(-5, 10))
    few = blobs.iloc[[0, 3_000, 6_000]]  # one point of each blob
    alpha = _rgba(shade_selection(canvas, few))[..., 3]
    points = canvas.points(few, "x", "y", ds.count()).data > 0
    assert points.sum() == 3 and (alpha > 0).sum() >= 3 * 9  # each point more than one pixel
    assert not alpha[~_near(points, 3)].any()  # transparent away from the selection


def test_selection_by_outlier_score_is_opaque_over_the_faded_scores(blobs):
    import datashader as ds

    canvas = ds.Canvas(plot_width=160, plot_height=120, x_range=(-10, 10), y_range=(-5, 10))
    data = blobs.assign(outlier_score=np.linspace(0, 1, len(blobs), dtype=np.float32))
    chosen = (blobs.label == "blue").to_numpy()
    top = _rgba(shade_selection(canvas, data.loc[chosen, ["x", "y", "outlier_score"]]))
    base = _rgba(fade(shade_scores(canvas, data)))
    where = canvas.points(data[chosen], "x", "y", ds.count()).data > 0
    assert top[where][:, 3].min() >= SELECTED_MIN_ALPHA and base[..., 3].max() <= int(FADE * 255) + 1


# ---- level 2: the view on a store ------------------------------------------------------------------


@pytest.fixture
def store():
    return ResultsStore(results=synthetic_results(1_500, clusters=4, seed=5))


def _box(store):
    f = store.frame
    return (*f.x.quantile([0.2]), *f.y.quantile([0.2]), *f.x.quantile([0.7]), *f.y.quantile([0.8]))


def _renderers(root):
    """The plain map's Bokeh renderers: (the map, the selected rows' layer)."""
    from bokeh.models import GlyphRenderer

    renderers = list(root.select({"type": GlyphRenderer}))
    base = [r for r in renderers if "name" in r.data_source.data]
    marked = [r for r in renderers if "name" not in r.data_source.data and "color" in r.data_source.data]
    assert len(base) == 1 and len(marked) == 1
    return base[0], marked[0]


def _drawn_colours(renderer) -> list[str]:
    """Each point's colour as the browser maps it: the colour mapper's palette at its code."""
    fill = renderer.glyph.fill_color
    mapper, codes = fill.transform, np.asarray(renderer.data_source.data[fill.field])
    step = (mapper.high - mapper.low) / len(mapper.palette)
    return [mapper.palette[int((c - mapper.low) // step)] for c in codes]


def test_plain_map_fades_and_draws_the_selection_in_label_colours(store):
    from bokeh.document import Document

    view = ScatterView(store=store)
    root = pn.panel(view).get_root(Document())
    base, marked = _renderers(root)
    assert not view.rasterized and not view.faded
    assert base.glyph.fill_alpha == 1 and len(marked.data_source.data["x"]) == 0  # nothing selected, nothing fades
    data_before = base.data_source.data

    store.select_box(*_box(store))
    rows = store.selected_rows()
    assert 0 < len(rows) < store.n_rows and view.faded
    for glyph in (base.glyph, base.selection_glyph, base.nonselection_glyph):  # Bokeh's own box too
        assert glyph.fill_alpha == pytest.approx(FADE) and glyph.line_alpha == pytest.approx(FADE)
    assert base.data_source.data is data_before  # a fade sends an alpha, not the points again
    for glyph in (marked.glyph, marked.selection_glyph, marked.nonselection_glyph):
        assert glyph.fill_alpha == 1
    assert np.allclose(marked.data_source.data["x"], store.frame.x.to_numpy()[rows])
    colours = _drawn_colours(marked)
    assert colours == [store.colors[label] for label in store.frame.label.iloc[rows]]
    assert "#111111" not in colours and marked.glyph.line_color != "#111111"
    assert _drawn_colours(base) == [store.colors[label] for label in store.frame.label]

    # the label chooser narrows the selection without a box: the layer follows the store
    store.selected_labels = store.selected_labels[:1]
    narrowed = store.selected_rows()
    assert 0 < len(narrowed) < len(rows)
    assert set(_drawn_colours(marked)) == {store.colors[store.selected_labels[0]]}
    assert len(marked.data_source.data["x"]) == len(narrowed)

    store.param.update(selection=np.array([], dtype=np.int64), selected_labels=[])
    assert not view.faded and base.glyph.fill_alpha == 1 and len(marked.data_source.data["x"]) == 0


def test_plain_map_by_outlier_score_selection_keeps_the_score_colours(store):
    from bokeh.document import Document

    view = ScatterView(store=store, color_by="outlier score")
    root = pn.panel(view).get_root(Document())
    store.select_box(*_box(store))
    base, marked = _renderers(root)
    rows = store.selected_rows()
    assert base.glyph.fill_alpha == pytest.approx(FADE) and marked.glyph.fill_alpha == 1
    assert np.allclose(marked.data_source.data["color"], store.frame.outlier_score.to_numpy()[rows])
    assert marked.glyph.fill_color.transform.palette == base.glyph.fill_color.transform.palette


def test_datashaded_map_fades_and_shades_the_selection_in_label_colours(store):
    import datashader as ds
    from bokeh.document import Document
    from bokeh.models import GlyphRenderer, ImageRGBA

    view = ScatterView(store=store, rasterize_above=10)
    root = pn.panel(view).get_root(Document())
    assert view.rasterized
    f = store.frame
    x_range, y_range = (float(f.x.min()), float(f.x.max())), (float(f.y.min()), float(f.y.max()))
    size = dict(x_range=x_range, y_range=y_range, width=160, height=120)
    unfaded = view._map_image(view.frame_version, faded=view.faded, **size).data[..., 3]
    renderers = [r for r in root.select({"type": GlyphRenderer}) if isinstance(r.glyph, ImageRGBA)]
    alpha = lambda r: np.asarray(r.data_source.data["image"][0], dtype=np.uint32) >> 24  # what the page gets
    before = [alpha(r) for r in renderers]
    assert len(renderers) == 2 and not view.faded
    (page_map, page_top), = [(r, t) for r, t in (renderers, renderers[::-1]) if alpha(r).any()]
    assert alpha(page_map).min() == 0 and alpha(page_map).max() == 255 and not alpha(page_top).any()

    store.select_box(*_box(store))
    rows = store.selected_rows()
    assert 0 < len(rows) < store.n_rows and view.faded
    faded = view._map_image(view.frame_version, faded=view.faded, **size).data[..., 3]
    drawn = unfaded > 0
    assert np.array_equal(faded > 0, drawn)  # every point still there...
    assert faded.max() <= int(FADE * 255) + 1 and unfaded[drawn].min() >= 90  # ...faded
    top = view._highlight_image(view.selection_version, **size).data[::-1]  # bottom row first, as datashader
    canvas = ds.Canvas(plot_width=160, plot_height=120, x_range=x_range, y_range=y_range)
    chosen = f.iloc[rows]
    count = canvas.points(chosen, "x", "y", ds.count()).data
    assert count.sum() == len(rows) and (top[count > 0][:, 3] >= SELECTED_MIN_ALPHA).all()
    # each pixel of selected points: their label colours mixed (as the map mixes them)
    rgb = np.array([rgb255(store.colors[label]) for label in chosen.label], dtype=float)
    mean = np.stack([canvas.points(chosen.assign(v=rgb[:, i]), "x", "y", ds.sum("v")).data for i in range(3)], -1)
    where = count > 0
    expected = mean[where] / count[where][:, None]
    close = np.abs(top[where][:, :3].astype(float) - expected).max(axis=1) <= 12
    assert close.mean() >= 0.9  # the rest: a neighbour of another label spread over them
    assert not (top[top[..., 3] > 0][:, :3].max(axis=1) < 60).any()  # no dark mass
    assert not top[~_near(count > 0, 3)][:, 3].any()  # transparent away from the selection

    # the page's images: the map faded, the selection drawn over it
    assert 0 < alpha(page_map).max() <= int(FADE * 255) + 1 and alpha(page_top).max() == 255

    store.param.update(selection=np.array([], dtype=np.int64), selected_labels=[])
    assert not view.faded
    assert not view._highlight_image(view.selection_version, **size).data[..., 3].any()
    assert np.array_equal(view._map_image(view.frame_version, faded=view.faded, **size).data[..., 3], unfaded)
    assert np.array_equal(alpha(page_map), before[renderers.index(page_map)]) and not alpha(page_top).any()


# ---- level 3: in Chromium --------------------------------------------------------------------------


def _darkness(pixels: np.ndarray) -> np.ndarray:
    """How far each RGB pixel is from the white background (0: white, 255: black)."""
    return 255 - pixels[..., :3].astype(float).mean(axis=-1)


@pytest.mark.ui
def test_a_box_on_the_datashaded_map_keeps_label_colours_and_fades_the_rest():
    """30,000 points (datashaded): a box drawn with the mouse. Inside it the map shows the label
    colours, not a dark mass; outside it the same pixels are lighter than before."""
    from PIL import Image

    results = synthetic_results(30_000, clusters=5, seed=3)
    made = []

    def build():
        made.append(Dashboard(store=ResultsStore(results=results)))
        return made[-1].page()

    with chromium() as browser, serving({"map": build}) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "map")
        page.wait_for_selector("canvas", timeout=60_000)
        wait_for_plot(page)
        view, store = made[-1].scatter, made[-1].store
        assert view.rasterized
        canvas = page.locator("canvas").first
        shot = lambda: np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"))
        # Bokeh sizes a map that fills its card once more on its next layout: have that now, so the
        # shots before and after the selection are of the same plot frame
        page.set_viewport_size({"width": 1400, "height": 999})
        page.set_viewport_size({"width": 1400, "height": 1000})
        wait_for_plot(page)
        before = shot()
        box = canvas.bounding_box()
        box_select(page, store, (0.3, 0.3), (0.65, 0.7))
        assert 0 < len(store.selection) < store.n_rows, "the box select never reached the store"
        # the box the store selected, in the screenshot's pixels (the plot's own scales)
        x0, y0, x1, y1 = view.bounds.bounds
        (left, top), (right, bottom) = (page_point(page, x0, y1), page_point(page, x1, y0))
        left, right = int(left - box["x"]), int(right - box["x"])
        top, bottom = int(top - box["y"]), int(bottom - box["y"])
        inside = np.zeros(before.shape[:2], dtype=bool)
        inside[top + 8:bottom - 8, left + 8:right - 8] = True
        outside = np.ones_like(inside)
        outside[max(top - 12, 0):bottom + 12, max(left - 12, 0):right + 12] = False
        was_drawn = outside & (_darkness(before) > 40)
        assert inside.sum() > 10_000 and was_drawn.sum() > 2_000

        # both images came: the map outside the box lighter, the selection at least as strong as the map was
        shown = lambda image: (_darkness(image)[was_drawn].mean() < 0.5 * _darkness(before)[was_drawn].mean()
                               and _darkness(image)[inside].mean() >= 0.9 * _darkness(before)[inside].mean())
        assert wait_until(lambda: shown(shot()), timeout=60), "the map outside the box never faded"
        wait_for_plot(page)
        after = shot()
        assert shown(after)
        # inside: the label colours, over white. A colour c drawn at alpha a shows as
        # white - a (white - c): its direction from white is the label colour's.
        drawn = inside & (_darkness(after) > 25)
        assert drawn.sum() > 0.05 * inside.sum()
        pixels = after[drawn][:, :3].astype(float)
        assert (pixels.max(axis=1) >= 80).mean() > 0.95, "a dark mass where points are selected"
        labels = store.frame.label.iloc[store.selected_rows()].unique()
        palette = np.array([rgb255(store.colors[label]) for label in labels], dtype=float)
        away = 255 - pixels
        away /= np.linalg.norm(away, axis=1, keepdims=True)
        hues = 255 - palette
        hues /= np.linalg.norm(hues, axis=1, keepdims=True)
        assert (away @ hues.T).max(axis=1).mean() > 0.97 and ((away @ hues.T).max(axis=1) > 0.95).mean() > 0.8
        page.close()
