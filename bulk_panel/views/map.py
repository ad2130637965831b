"""The map: :class:`ScatterView`, points coloured by label, datashaded above a size.

>>> ScatterView(store=store, rasterize_above=RASTERIZE_ABOVE)
"""
from __future__ import annotations

import importlib
from typing import Optional

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from ..state import NOISE_COLOR, ResultsStore
from ..state.memo import shared_memo
from ._shading import (FADE, SCORES, fade, rgb255, rgb_element, shade_labels, shade_scores, shade_selection,
                       span, warm_datashader)

__all__ = ["RASTERIZE_ABOVE", "ScatterView", "warm_datashader"]

#: above this many points the map is datashaded: a box select then redraws in 0.2 s at 10k points
#: in Chromium, against 0.9 s for 5k-10k plain points (``python -m benchmarks.bench_page``)
RASTERIZE_ABOVE = 3_000


class ScatterView(pn.viewable.Viewer):
    """The map: points coloured by label; datashaded above ``rasterize_above`` points.

    Box and lasso selections go to the store in data space (so they work on the datashaded map
    too). While the store has selected rows, the map fades (alpha times ``FADE``) and those rows
    are drawn over it in their own colours, as Bokeh draws a selection; the focused row is ringed.
    """

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    rasterize_above = param.Integer(default=RASTERIZE_ABOVE, bounds=(0, None), doc="Datashade above this many points.")
    point_size = param.Number(default=5, bounds=(1, 20), doc="Marker size of plain points.")
    height = param.Integer(default=640, allow_None=True, bounds=(100, None),
                           doc="Plot height in pixels (the width stretches); None: the height its container gives.")
    frame_version = param.Integer(default=0, doc="Bumped when the points or colours change (cheap to hash).")
    selection_version = param.Integer(default=0, doc="Bumped when the selected rows change.")
    faded = param.Boolean(default=False, doc="Whether the map fades under selected rows (the store has some).")
    hover_radius = param.Number(
        default=0.02, bounds=(0, 1), doc="Hover picks the nearest point within this share of the visible diagonal."
    )
    color_by = param.Selector(
        default="label", objects=["label", "outlier score", "confidence"],
        doc="Colour points by their label, by GLOSH outlier score (dark = typical, bright = unusual), or by "
            "how sure their label is (green: the person's or a sure prediction; red: an unsure one; grey: a "
            "cluster's).",
    )

    def __init__(self, **params):
        super().__init__(**params)
        self.param.watch(self._rebuild, "color_by")
        # HoloViews hashes the arguments of a DynamicMap callback; counters keep that cheap
        self.store.param.watch(lambda *e: self.param.update(frame_version=self.frame_version + 1), ["frame", "colors"])
        self.store.param.watch(self._on_selection, ["frame", "selection", "selected_labels", "only_selected"])
        self.store.param.watch(self._on_results, "results")
        self._plot = None
        self._pane = None
        self._points_memo = None  # ((frame version, colour by), points at full alpha, colouring, frame)
        self._raster_memo = None  # ((frame version, colour by), frame the datashaded map aggregates)
        self._extent_memo = None  # (frame version, (x range, y range))
        self._shaded_memo = None  # (view key, the last datashaded map, unfaded: a datashader image)
        self._image_memo = None  # (view key + faded, the last datashaded map as an hv.RGB)
        self._selected_memo = None  # (view key + selection version, the last datashaded selection)
        self.faded = bool(len(self.store.selected_rows()))
        self._make_streams()

    def _make_streams(self) -> None:
        self.bounds = hv.streams.BoundsXY()
        self.lasso = hv.streams.Lasso()
        self.pointer = hv.streams.PointerXY(x=None, y=None)
        self.ranges = hv.streams.RangeXY()
        self.bounds.add_subscriber(self._on_bounds)
        self.lasso.add_subscriber(self._on_lasso)
        self.pointer.add_subscriber(self._on_pointer)

    @property
    def rasterized(self) -> bool:
        return self.store.n_rows > self.rasterize_above

    def _on_results(self, event) -> None:
        # new results (a pipeline run): a new plot, for the new extents (and perhaps datashading)
        self._rebuild()

    def _rebuild(self, *events) -> None:
        if self._plot is not None:
            self._plot = None
            self._make_streams()
            if self._pane is not None:
                self._pane.object = self.plot()

    def _on_selection(self, *events) -> None:
        # one update: the selection layer redraws each time, the map only when it fades or clears
        self.param.update(selection_version=self.selection_version + 1,
                          faded=bool(len(self.store.selected_rows())))

    def _on_pointer(self, x=None, y=None) -> None:
        """The nearest point to the cursor (server-side, so it works on the datashaded map too)."""
        if x is None or y is None or not self.store.n_rows:
            return
        x_range, y_range = self.ranges.x_range, self.ranges.y_range
        if x_range is None or y_range is None:
            frame = self.store.frame
            x_range = (float(frame["x"].min()), float(frame["x"].max()))
            y_range = (float(frame["y"].min()), float(frame["y"].max()))
        radius = self.hover_radius * float(np.hypot(x_range[1] - x_range[0], y_range[1] - y_range[0]))
        row = self.store.nearest(x, y, max_distance=radius)
        if row is not None and row != self.store.hover:
            self.store.hover = row

    def _on_bounds(self, bounds=None) -> None:
        if bounds is not None:
            self.store.select_box(*bounds)

    def _on_lasso(self, geometry=None) -> None:
        if geometry is not None and len(geometry) >= 3:
            geometry = np.asarray(geometry)
            self.store.select_polygon(geometry[:, 0], geometry[:, 1])

    def _points(self, version: int = 0, faded: bool = False) -> hv.Points:
        """The plain (not datashaded) map's points: x, y, label, its colour's position in the
        palette (``code``; or the outlier score), file name; at alpha ``FADE`` when ``faded``. The
        points are made once per frame version; fading returns them with another alpha only (the
        same plot id: the browser gets the new alpha, not the points again)."""
        key = (version, self.color_by)
        frame = self.store.frame
        # keyed by the frame too: a new plot (new results) may be drawn before the version is bumped
        if self._points_memo is None or self._points_memo[0] != key or self._points_memo[3] is not frame:
            colors = self.store.colors
            codes, names = self.store.label_codes()  # factorised once per frame
            position = {label: i for i, label in enumerate(colors)}
            lookup = np.array([position.get(name, -1) for name in names], dtype=np.int64)
            per_row = lookup[codes] if len(codes) else codes
            data = pd.DataFrame({
                "x": frame["x"].to_numpy(),
                "y": frame["y"].to_numpy(),
                "label": pd.Categorical.from_codes(per_row, categories=list(colors)),
            })
            if self.color_by in SCORES:
                column, cmap = SCORES[self.color_by]
                data[column] = frame[column].to_numpy(dtype=float)
                colouring = dict(color=column, cmap=cmap, clim=(0, 1), clipping_colors={"NaN": NOISE_COLOR})
            else:
                # a number per point and a palette, not a colour string per point: Bokeh checks
                # each string whenever the points are drawn again (a fade), numbers it does not;
                # floats: HoloViews takes one integer shared by all points for a colour (RGBA)
                palette = [*colors.values(), NOISE_COLOR]  # the last: a label without a colour
                data["code"] = np.where(per_row >= 0, per_row, len(colors)).astype(np.float32)
                colouring = dict(color="code", cmap=palette, clim=(-0.5, len(palette) - 0.5))
            data["name"] = self.store.file_names()
            points = hv.Points(data, kdims=["x", "y"], vdims=[c for c in data.columns if c not in ("x", "y")])
            self._points_memo = (key, points.opts(**colouring, backend="bokeh"), colouring, frame)
        alpha = FADE if faded else 1.0
        # Bokeh's own selection glyphs get the same alpha: a box drawn in the browser selects
        # there too, and must not brighten what the store's rows (the overlay) say is selected
        return self._points_memo[1].opts(alpha=alpha, selection_alpha=alpha, nonselection_alpha=alpha,
                                         clone=True, backend="bokeh")

    def _raster_data(self, version: int = 0) -> pd.DataFrame:
        """What the datashaded map aggregates, made once per frame/colours version: x, y and each
        row's label colour as r, g, b (or its outlier score). Summing r, g, b per pixel and dividing
        by the count mixes the label colours exactly as ``count_cat`` does, without one count per
        label and pixel (37 labels at 1M points: 2D sums instead of a 21M-cell cube)."""
        key = (version, self.color_by)
        if self._raster_memo is None or self._raster_memo[0] != key:
            frame = self.store.frame
            data = {"x": frame["x"].to_numpy(), "y": frame["y"].to_numpy()}
            if self.color_by in SCORES:
                column = SCORES[self.color_by][0]
                data[column] = frame[column].to_numpy(dtype=np.float32)
            else:
                codes, names = self.store.label_codes()
                rgb = np.array([rgb255(self.store.colors.get(name, NOISE_COLOR)) for name in names],
                               dtype=np.float32).reshape(-1, 3)
                # per frame and colours, shared by the sessions showing the same (12 MB at 1M rows)
                per_row = shared_memo(frame, "rgb per row").get(
                    (rgb.tobytes(),), lambda: rgb[codes] if len(codes) else np.zeros((0, 3), dtype=np.float32))
                data.update(r=per_row[:, 0], g=per_row[:, 1], b=per_row[:, 2])
            self._raster_memo = (key, pd.DataFrame(data, copy=False))
        return self._raster_memo[1]

    def _extent(self, version: int = 0) -> tuple[tuple[float, float], tuple[float, float]]:
        """The points' x and y ranges (the unzoomed map), once per frame version."""
        if self._extent_memo is None or self._extent_memo[0] != version:
            frame = self.store.frame
            ranges = tuple(span(frame[c].to_numpy()) for c in ("x", "y"))
            self._extent_memo = (version, ranges)
        return self._extent_memo[1]

    def _canvas(self, x_range, y_range, width, height, scale):
        import datashader as ds

        full_x, full_y = self._extent(self.frame_version)
        x_range, y_range = span(x_range or full_x), span(y_range or full_y)
        ratio = min(max(float(scale or 1.0), 0.5), 2.0)  # a HiDPI screen: more pixels, capped at 2x
        width = max(int((width or 800) * ratio), 1)
        height = max(int((height or self.height or 600) * ratio), 1)
        return ds.Canvas(plot_width=width, plot_height=height, x_range=x_range, y_range=y_range)

    def _map_image(self, version: int = 0, faded: bool = False, x_range=None, y_range=None, width=None,
                   height=None, scale=None) -> hv.RGB:
        """The datashaded map for the visible range and plot size: label colours mixed per pixel
        (or mean outlier score), alpha by count (eq_hist), spread where points are sparse; its
        alpha times ``FADE`` when ``faded`` (the aggregation is kept: fading costs no new pass)."""
        import datashader.transfer_functions as tf

        canvas = self._canvas(x_range, y_range, width, height, scale)
        view = (version, self.color_by, canvas.x_range, canvas.y_range, canvas.plot_width, canvas.plot_height)
        key = (*view, faded)
        if self._image_memo is not None and self._image_memo[0] == key:
            return self._image_memo[1]  # the same view again (a first render asks twice)
        if self._shaded_memo is None or self._shaded_memo[0] != view:
            data = self._raster_data(version)
            image = shade_scores(canvas, data) if self.color_by in SCORES else shade_labels(canvas, data)
            self._shaded_memo = (view, tf.dynspread(image, threshold=0.6, max_px=3))
        image = self._shaded_memo[1]
        self._image_memo = (key, rgb_element(fade(image) if faded else image, canvas))
        return self._image_memo[1]

    def _highlight_image(self, version: int = 0, x_range=None, y_range=None, width=None, height=None,
                         scale=None) -> hv.RGB:
        """The selected rows, datashaded in their own colours (label colours mixed per pixel, or
        outlier score) over the faded map; nothing selected: an empty image."""
        canvas = self._canvas(x_range, y_range, width, height, scale)
        key = (version, self.frame_version, self.color_by, canvas.x_range, canvas.y_range, canvas.plot_width,
               canvas.plot_height)
        if self._selected_memo is not None and self._selected_memo[0] == key:
            return self._selected_memo[1]
        rows = self.store.selected_rows()
        if not len(rows):
            image = None
        else:
            data = self._raster_data(self.frame_version)
            image = shade_selection(canvas, pd.DataFrame({c: data[c].to_numpy()[rows] for c in data.columns},
                                                         copy=False))
        self._selected_memo = (key, rgb_element(image, canvas))
        return self._selected_memo[1]

    def _similar(self, rows: np.ndarray) -> hv.Points:
        frame = self.store.frame
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[(rows >= 0) & (rows < len(frame))] if frame is not None else rows[:0]
        xy = (frame["x"].to_numpy()[rows], frame["y"].to_numpy()[rows]) if len(rows) else ([], [])
        return hv.Points(xy, kdims=["x", "y"])

    def _highlight(self, version: int = 0) -> hv.Points:
        """The store's selected rows, drawn over the faded plain map in their own colours."""
        self._points(self.frame_version)  # made once per frame version
        _, points, colouring, _ = self._points_memo
        data = points.data[["x", "y", colouring["color"]]]
        return hv.Points(data.iloc[self.store.selected_rows()], kdims=["x", "y"], vdims=[colouring["color"]]).opts(
            **colouring, backend="bokeh")

    def _focus(self, focus: Optional[int]) -> hv.Points:
        frame = self.store.frame
        if focus is None or frame is None or not 0 <= focus < len(frame):
            return hv.Points([], kdims=["x", "y"])
        return hv.Points([(float(frame["x"].iloc[focus]), float(frame["y"].iloc[focus]))], kdims=["x", "y"])

    def plot(self) -> hv.Overlay:
        """The HoloViews object (built once per view)."""
        if self._plot is not None:
            return self._plot
        importlib.import_module("holoviews.plotting.bokeh")  # the backend the options belong to

        store = self.store
        tools = ["box_select", "lasso_select"]
        focus = hv.DynamicMap(pn.bind(self._focus, focus=store.param.focus))
        similar = hv.DynamicMap(pn.bind(self._similar, rows=store.param.similar))
        by_score = self.color_by in SCORES
        if self.rasterized:
            # one datashader pass per zoom, straight to an RGB image: no per-label cube, no
            # chain of HoloViews operations (see _map_image); a few images and markers need no
            # WebGL context (costly to make, above all without a GPU): a 2D canvas draws them
            shown = hv.DynamicMap(pn.bind(self._map_image, version=self.param.frame_version,
                                          faded=self.param.faded),
                                  streams=[self.ranges, hv.streams.PlotSize()]).opts(
                tools=tools, backend_opts={"plot.output_backend": "canvas"}, backend="bokeh")
            marked = hv.DynamicMap(pn.bind(self._highlight_image, version=self.param.selection_version),
                                   streams=[hv.streams.RangeXY(), hv.streams.PlotSize()])
        else:
            base = hv.DynamicMap(pn.bind(self._points, version=self.param.frame_version, faded=self.param.faded))
            highlight = hv.DynamicMap(pn.bind(self._highlight, version=self.param.selection_version))
            # colours come with the points (_points: the store's colours change with the frame)
            marker = dict(size=self.point_size, line_color="white", line_width=0.3, backend="bokeh")
            shown = base.opts(colorbar=by_score, tools=tools + ["hover"],
                              hover_tooltips=[("file", "@name"), ("label", "@label")], **marker)
            # the selected rows as the map draws them, at full alpha whatever Bokeh's own box selects
            marked = highlight.opts(alpha=1.0, nonselection_alpha=1.0, selection_alpha=1.0, **marker)
        ring = focus.opts(color=None, fill_alpha=0, line_color="#e41a1c", line_width=3, size=22, backend="bokeh")
        alike = similar.opts(marker="diamond", color="#ff9900", line_color="#000000", line_width=1, size=12,
                             backend="bokeh")
        for stream in (self.bounds, self.lasso, self.pointer, self.ranges):
            stream.source = shown
        self._built_rasterized = self.rasterized
        size = {"height": self.height} if self.height is not None else {"min_height": 300}  # None: fill the container
        self._plot = (shown * marked * alike * ring).opts(
            responsive=True, **size, xaxis=None, yaxis=None, show_grid=False,
            active_tools=["box_select", "wheel_zoom"], toolbar="above", show_legend=False,
            default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"], backend="bokeh",
        )
        return self._plot

    def __panel__(self):
        if self._pane is None:
            self._pane = (pn.pane.HoloViews(self.plot(), sizing_mode="stretch_both", min_height=300)
                          if self.height is None else
                          pn.pane.HoloViews(self.plot(), sizing_mode="stretch_width", min_height=self.height))
        return self._pane
