"""Thin views of a :class:`~bulk_panel.state.ResultsStore`: they read it and write intent back.

>>> store = ResultsStore.from_path("results.parquet")
>>> Dashboard(store=store).servable()      # in app.py
>>> Dashboard(store=store)                 # inline in Jupyter

Thumbnails reach the browser through ``ROUTES`` (``/thumbs/<content hash>.jpg``), which serves
only images registered from loaded results: ``panel serve app.py --plugins bulk_panel.views``
or ``pn.serve(..., extra_patterns=ROUTES)``. Without the route (a notebook) the table inlines
the thumbnails of a small selection as ``data:`` URIs. The shared cache allows the images of
the rows a view shows, as it shows them (:func:`shown_hashes`).
"""
from __future__ import annotations

import asyncio
import functools
import html
import io
import os
import secrets
import threading
import weakref
from pathlib import Path
from typing import Callable, Optional

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param
from panel.io.resources import CDN_DIST
from panel.theme.fast import Fast

try:
    from tornado.web import HTTPError, RequestHandler
except ImportError:  # the shared static page (Pyodide has no tornado): no server, so no route
    HTTPError, RequestHandler = LookupError, object

from .compute.results import Results, load_results
from .compute.images import resolve_inside
from .compute.thumbs import HASH_PATTERN, PREVIEW_SIZE, THUMB_SIZE, ThumbnailCache, iter_image_zip
from .run_controls import PipelineControls
from .state import PipelineRunner
from .safe import text_pane
from .state import NOISE_COLOR, ResultsStore

__all__ = [
    "ClusterGallery", "Dashboard", "Downloads", "DuplicatesView", "EXPORTS_URL", "ExploreTools", "HoverPreview",
    "ImagePreview", "LabelSummary", "LabelTools", "OfflineFast", "ROUTES", "ScatterView", "SelectionTable",
    "SimilarGallery", "ShownThumbnails", "ThumbnailHandler", "ZipExportHandler", "figures_html", "thumb_cells",
    "page_template", "shared_exports", "shared_results", "shared_thumbnails", "shown_hashes", "text_pane",
    "thumb_sources",
]

THUMBS_URL = "/thumbs/"
OUTLIER_CMAP = ["#1b1b3a", "#3b4cc0", "#9fbfe0", "#f7b267", "#e4572e"]  # typical → unusual
EXPORTS_URL = "/exports/"
_SIZES = {"thumb": THUMB_SIZE, "preview": PREVIEW_SIZE}


class ShownThumbnails(ThumbnailCache):
    """A :class:`ThumbnailCache` that also serves the images views have shown from results
    whose paths stay on disk: :meth:`allow` notes (content hash → image folder, path) for the
    rows shown, a dict entry each (the newest ``limit`` kept), and a hash is checked against
    its folder (:func:`~bulk_panel.compute.images.resolve_inside`) and registered only when a
    thumbnail of it is asked for. A table of 50,000 rows so costs milliseconds, not a second.

    >>> thumbs = ShownThumbnails(); thumbs.allow("/photos", ["0f…"], ["cats/tom.jpg"])
    >>> thumbs.get("0f…")   # resolved and made on first ask
    """

    def __init__(self, cache_dir: Optional[str | Path] = None, limit: int = 200_000):
        super().__init__(cache_dir)
        self.limit = int(limit)
        self._shown: "dict[str, tuple[Path, str]]" = {}

    def allow(self, image_root: Optional[str | Path], hashes, paths) -> None:
        """Allow the images at ``paths`` (relative to ``image_root``), keyed by ``hashes``."""
        if image_root is None:
            return
        root = Path(image_root)
        with self._lock:
            for digest, rel in zip(hashes, paths):
                if isinstance(digest, str) and digest not in self._sources and HASH_PATTERN.fullmatch(digest):
                    self._shown.pop(digest, None)
                    self._shown[digest] = (root, rel)  # newest last
            while len(self._shown) > self.limit:
                del self._shown[next(iter(self._shown))]

    def _resolve(self, digest) -> None:
        with self._lock:
            shown = self._shown.pop(digest, None) if isinstance(digest, str) else None
        if shown is not None:
            source = resolve_inside(*shown)  # a crafted results file reaches nothing outside
            if source is not None:
                with self._lock:
                    self._sources.setdefault(digest, Path(source))

    def __contains__(self, digest: str) -> bool:
        self._resolve(digest)
        return super().__contains__(digest)

    def source(self, digest: str) -> Optional[Path]:
        self._resolve(digest)
        return super().source(digest)

    def get(self, digest: str, size: int = THUMB_SIZE) -> Optional[bytes]:
        self._resolve(digest)
        return super().get(digest, size)


def shared_thumbnails() -> ThumbnailCache:
    """The process-wide thumbnail cache (immutable per hash, shared by all sessions)."""
    return pn.state.as_cached("bulk_panel.thumbnails", ShownThumbnails)


def shown_hashes(store: ResultsStore, rows, thumbnails: Optional[ThumbnailCache],
                 frame: Optional[pd.DataFrame] = None) -> np.ndarray:
    """The content hashes of the rows at positions ``rows`` ('' without the column), for
    :func:`thumb_sources` / :func:`thumb_cells`; ``frame``: those rows, already read.

    With the shared cache (:class:`ShownThumbnails`), the images of exactly these rows are
    allowed here, so the thumbnail route and the previews serve what the page shows, and
    nothing else (checking every image of 1M results on load took ~20 s). A plain cache with
    results in memory registered every image on load (:class:`Dashboard`); with results whose
    paths stay on disk it registers these rows now.

    >>> thumb_sources(shown_hashes(store, rows, thumbs), THUMBS_URL, thumbs)
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if "content_hash" not in store.columns:
        return np.full(len(rows), "", dtype=object)
    results = store.results
    if (thumbnails is None or results is None or results.image_root is None
            or (not results.on_disk and not isinstance(thumbnails, ShownThumbnails))):  # registered on load
        return frame["content_hash"].to_numpy() if frame is not None else store.values("content_hash", rows)
    if frame is None:
        frame = store.rows_frame(rows, ["path", "content_hash"])
    hashes, paths = frame["content_hash"].to_numpy(), frame["path"].to_numpy()
    if isinstance(thumbnails, ShownThumbnails):
        thumbnails.allow(results.image_root, hashes, paths)
    else:  # a plain cache (a test's, a notebook's): checked now, row by row
        thumbnails.register(results.image_root, pd.DataFrame({"content_hash": hashes, "path": paths}))
    return hashes


def shared_results(path: str | Path) -> Results:
    """The results file at ``path``, read once per process and version (path + mtime + size).

    Sessions on the same file share this object and never change it: each
    :class:`~bulk_panel.state.ResultsStore` works on its own copy and a save writes a new
    file version (a new key), so a second session at 1M points does not read the file again.
    A folder of parts opens lazily (its text columns stay on disk, read for the rows shown).

    >>> store = ResultsStore(results=shared_results("results.parquet"))
    """
    path = Path(path).resolve()
    try:
        stat = os.stat(path)
    except OSError:
        return load_results(path, lazy=True)  # raises ResultsError naming the file
    key = f"bulk_panel.results:{path}:{stat.st_mtime_ns}:{stat.st_size}"
    return pn.state.as_cached(key, load_results, path=path, lazy=True)


class ThumbnailHandler(RequestHandler):
    """``GET /thumbs/<32 hex>.jpg[?size=preview]``: the JPEG of a registered image, else 404."""

    async def get(self, digest: str) -> None:
        size = _SIZES.get(self.get_argument("size", "thumb"))
        if size is None or not HASH_PATTERN.fullmatch(digest):
            raise HTTPError(404)
        jpeg = await asyncio.to_thread(shared_thumbnails().get, digest, size)
        if jpeg is None:
            raise HTTPError(404)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")  # content-addressed
        self.set_header("X-Content-Type-Options", "nosniff")
        self.write(jpeg)


def shared_exports() -> "weakref.WeakValueDictionary[str, ResultsStore]":
    """Process-wide: export token → the store of the session that owns it.

    Each served Downloads view registers its session's store under an unguessable token; the
    entry goes when the session does (weak values, and removed on session end).
    """
    return pn.state.as_cached("bulk_panel.exports", weakref.WeakValueDictionary)


class ZipExportHandler(RequestHandler):
    """``GET /exports/<token>/images.zip``: the zip of that session's selected images, streamed.

    The zip is written piece by piece (one image chunk at a time, in a worker thread) and each
    piece is flushed to the browser before the next is made, so the server's memory stays
    bounded whatever the selection's size, and nothing is written on the server's disk.
    """

    async def get(self, token: str) -> None:
        store = shared_exports().get(token)
        if store is None:
            raise HTTPError(404)
        frame, root = store.zip_source()  # a snapshot, taken on the event loop
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", 'attachment; filename="images.zip"')
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        pieces = iter_image_zip(frame, root)
        try:
            while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
                if piece:
                    self.write(piece)
                    await self.flush()  # wait until the piece has left: bounded memory
        except Exception:  # the browser went away (StreamClosedError) or a read failed
            pieces.close()
            raise


ROUTES = [
    (r"/thumbs/([0-9a-f]{32})\.jpg", ThumbnailHandler, {}),
    (r"/exports/([A-Za-z0-9_-]{20,64})/images\.zip", ZipExportHandler, {}),
]


def _button(label: str, on_click: Callable, **kw) -> pn.widgets.Button:
    button = pn.widgets.Button(label=label, **kw)
    button.on_click(lambda event: on_click())
    return button


def _on_demand(title: str, content) -> pn.Card:
    """A collapsed section whose content is rendered the first time it is opened, so the first
    page holds none of its models (a Card's hidden content would be sent and drawn anyway)."""
    card = pn.Card(title=title, collapsed=True, sizing_mode="stretch_width", margin=(5, 0))

    def fill(event) -> None:
        if not event.new and not card.objects:
            card.objects = [content]

    card.param.watch(fill, "collapsed")
    return card


def _tabs_on_demand(*tabs: tuple[str, object], **params) -> pn.Tabs:
    """Tabs whose content (after the first tab's) joins the page the first time its tab opens,
    then stays. Panel's ``dynamic=True`` keeps a hidden tab's models outside the document, and
    an update to one of those points the page's shared stylesheets at cdn.holoviz.org."""
    holders = [tabs[0][1]] + [pn.Column(sizing_mode="stretch_width") for _ in tabs[1:]]
    layout = pn.Tabs(*[(title, holder) for (title, _), holder in zip(tabs, holders)], **params)

    def fill(event) -> None:
        if event.new > 0 and not holders[event.new].objects:
            holders[event.new].objects = [tabs[event.new][1]]

    layout.param.watch(fill, "active")
    return layout


def _thumb_formatter(thumbnails_url: Optional[str], height: str) -> dict:
    """Tabulator's image formatter for a thumbnail column: a content hash → the thumbnail route,
    or (no route, Jupyter) the cell already holds a data: URI."""
    image = {"type": "image", "height": height}
    if thumbnails_url:
        image.update(urlPrefix=thumbnails_url, urlSuffix=".jpg")
    return image


def thumb_sources(hashes, thumbnails_url: Optional[str], thumbnails: Optional[ThumbnailCache]) -> list[str]:
    """An ``<img src>`` per content hash: the thumbnail route's URL, or (no route) an inline
    ``data:`` URI; '' where there is none. Hashes are checked, so a src is never markup."""
    hashes = ["" if h is None else str(h) for h in hashes]
    if thumbnails_url:
        return [f"{thumbnails_url}{h}.jpg" if HASH_PATTERN.fullmatch(h) else "" for h in hashes]
    return thumbnails.data_uris(hashes) if thumbnails is not None else [""] * len(hashes)


def thumb_cells(hashes, thumbnails_url: Optional[str], thumbnails: Optional[ThumbnailCache],
                limit: Optional[int] = None) -> list[str]:
    """A Tabulator thumbnail column (see :func:`_thumb_formatter`): the content hashes when the
    route serves them, else inline ``data:`` URIs for the first ``limit`` rows ('' after)."""
    hashes = ["" if h is None else str(h) for h in hashes]
    if thumbnails_url:
        return hashes
    head = hashes if limit is None else hashes[:limit]
    return thumb_sources(head, None, thumbnails) + [""] * (len(hashes) - len(head))


def figures_html(items: list[tuple[str, str, str]], size: int = 88) -> str:
    """A wrapping grid of thumbnails: ``(src, caption, tooltip)`` each. Every text is escaped
    (file names and labels are untrusted); a missing image is an empty box."""
    figures = []
    for src, caption, tooltip in items:
        image = (f'<img src="{html.escape(src)}" loading="lazy" style="width:{size}px;height:{size}px;'
                 f'object-fit:contain;background:#f4f4f4">' if src else
                 f'<div style="width:{size}px;height:{size}px;background:#eee"></div>')
        figures.append(
            f'<figure title="{html.escape(tooltip)}" style="margin:3px;width:{size}px">{image}'
            f'<figcaption style="font-size:11px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">'
            f'{html.escape(caption)}</figcaption></figure>'
        )
    return '<div style="display:flex;flex-wrap:wrap">' + "".join(figures) + "</div>"


def _rgb255(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return tuple(int(color[i : i + 2], 16) for i in (0, 2, 4))


def _span(values) -> tuple[float, float]:
    """(low, high) of an array or a range, widened when empty or zero-width (datashader needs width)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if len(values) else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    return low, high


def mixed_colours(counts, r, g, b, min_alpha: int = 40):
    """A datashader image from per-pixel aggregates: ``counts`` (points per pixel) and ``r``,
    ``g``, ``b`` (sums of the points' colour channels, 0-255). Each pixel takes the mean colour
    of its points and an alpha by count (eq_hist): what ``tf.shade`` of a ``count_cat``
    aggregate gives, from 2D sums instead of one count per category and pixel.

    >>> mixed_colours(canvas.points(df, "x", "y", ds.count()), *(canvas.points(..., ds.sum(c)) ...))
    """
    import datashader.transfer_functions as tf

    alpha = tf.shade(counts, cmap="#000000", how="eq_hist", min_alpha=min_alpha).data >> 24
    with np.errstate(divide="ignore", invalid="ignore"):
        channels = [np.nan_to_num(np.asarray(c.data) / counts.data).astype(np.uint32) for c in (r, g, b)]
    packed = channels[0] | (channels[1] << 8) | (channels[2] << 16) | (alpha.astype(np.uint32) << 24)
    return tf.Image(packed, coords=counts.coords, dims=counts.dims)


def shade_labels(canvas, data: pd.DataFrame):
    """The map's label colours mixed per pixel, alpha by count: ``data`` has x, y and each row's
    colour as r, g, b (0-255)."""
    import datashader as ds

    # four plain aggregations (count, then one sum per channel, all through one column name so
    # they share one compiled kernel) beat one fused summary here
    sums = [canvas.points(pd.DataFrame({"x": data["x"], "y": data["y"], "value": data[c]}, copy=False),
                          "x", "y", ds.sum("value")) for c in ("r", "g", "b")]
    return mixed_colours(canvas.points(data, "x", "y", ds.count()), *sums, min_alpha=90)


def shade_scores(canvas, data: pd.DataFrame):
    """The map coloured by each pixel's mean outlier score (``data``: x, y, outlier_score)."""
    import datashader as ds
    import datashader.transfer_functions as tf

    return tf.shade(canvas.points(data, "x", "y", ds.mean("outlier_score")), cmap=OUTLIER_CMAP, min_alpha=90)


def shade_selection(canvas, data: pd.DataFrame):
    """The selected points (``data``: x, y) drawn dark and opaque, spread a little; transparent
    elsewhere, so the map shows around them."""
    import datashader as ds
    import datashader.transfer_functions as tf

    # a list: datashader 0.19 with a one-colour string and min_alpha=255 makes every pixel
    # opaque, empty ones too (the map disappeared under the selection)
    image = tf.shade(canvas.points(data, "x", "y", ds.count()), cmap=["#111111"], min_alpha=255)
    return tf.dynspread(image, threshold=0.9, max_px=2)


@functools.lru_cache(maxsize=1)
def warm_datashader() -> threading.Thread:
    """Compile datashader's kernels for the map once per process, in a background thread, so that
    the first page a server shows doesn't wait for them (~1.1 s). Call it at server start."""

    def run() -> None:
        import datashader as ds
        import datashader.transfer_functions as tf

        xy = np.linspace(0, 1, 64, dtype=np.float32)
        rgb = np.full(64, 128, np.float32)
        canvas = ds.Canvas(plot_width=8, plot_height=8, x_range=(0, 1), y_range=(0, 1))
        frame = pd.DataFrame({"x": xy, "y": xy, "r": rgb, "g": rgb, "b": rgb, "outlier_score": xy})
        tf.dynspread(shade_labels(canvas, frame), threshold=0.6, max_px=3)
        shade_scores(canvas, frame)
        shade_selection(canvas, frame)

    thread = threading.Thread(target=run, name="bulk_panel-warm-datashader", daemon=True)
    thread.start()
    return thread


def _rgb_element(image, canvas) -> hv.RGB:
    """An hv.RGB of a datashader image (rows bottom-up) over the canvas' ranges; None: transparent."""
    (x0, x1), (y0, y1) = canvas.x_range, canvas.y_range
    h, w = canvas.plot_height, canvas.plot_width
    data = np.zeros((h, w), dtype=np.uint32) if image is None else np.asarray(image.data, dtype=np.uint32)
    rgba = np.ascontiguousarray(data[::-1]).view(np.uint8).reshape(h, w, 4)  # hv.RGB: top row first
    return hv.RGB(rgba, bounds=(x0, y0, x1, y1), vdims=["R", "G", "B", "A"])


class ScatterView(pn.viewable.Viewer):
    """The map: points coloured by label; datashaded above ``rasterize_above`` points.

    Box and lasso selections go to the store in data space (so they work on the datashaded map
    too); the store's selected rows are drawn on top, the focused row is ringed.
    """

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    rasterize_above = param.Integer(default=20_000, bounds=(0, None), doc="Datashade above this many points.")
    point_size = param.Number(default=5, bounds=(1, 20), doc="Marker size of plain points.")
    height = param.Integer(default=640, doc="Plot height in pixels (the width stretches).")
    frame_version = param.Integer(default=0, doc="Bumped when the points or colours change (cheap to hash).")
    selection_version = param.Integer(default=0, doc="Bumped when the selected rows change.")
    hover_radius = param.Number(
        default=0.02, bounds=(0, 1), doc="Hover picks the nearest point within this share of the visible diagonal."
    )
    color_by = param.Selector(
        default="label", objects=["label", "outlier score"],
        doc="Colour points by their label, or by GLOSH outlier score (dark = typical, bright = unusual).",
    )

    def __init__(self, **params):
        super().__init__(**params)
        self.param.watch(self._rebuild, "color_by")
        # HoloViews hashes the arguments of a DynamicMap callback; counters keep that cheap
        self.store.param.watch(lambda *e: self.param.update(frame_version=self.frame_version + 1), ["frame", "colors"])
        self.store.param.watch(
            lambda *e: self.param.update(selection_version=self.selection_version + 1),
            ["frame", "selection", "selected_labels", "only_selected"],
        )
        self.store.param.watch(self._on_results, "results")
        self._plot = None
        self._pane = None
        self._raster_memo = None  # ((frame version, colour by), frame the datashaded map aggregates)
        self._extent_memo = None  # (frame version, (x range, y range))
        self._image_memo = None  # (view key, the last datashaded map)
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

    def _points(self, version: int = 0) -> hv.Points:
        """The plain (not datashaded) map's points: x, y, label, colour, file name."""
        frame, colors = self.store.frame, self.store.colors
        codes, names = self.store.label_codes()  # factorised once per frame
        position = {label: i for i, label in enumerate(colors)}
        lookup = np.array([position.get(name, -1) for name in names], dtype=np.int64)
        data = pd.DataFrame({
            "x": frame["x"].to_numpy(),
            "y": frame["y"].to_numpy(),
            "label": pd.Categorical.from_codes(lookup[codes] if len(codes) else codes, categories=list(colors)),
        })
        if self.color_by == "outlier score":
            data["outlier_score"] = frame["outlier_score"].to_numpy(dtype=float)
        data["name"] = self.store.file_names()
        data["color"] = frame["label"].map(colors).to_numpy()
        return hv.Points(data, kdims=["x", "y"], vdims=[c for c in data.columns if c not in ("x", "y")])

    def _raster_data(self, version: int = 0) -> pd.DataFrame:
        """What the datashaded map aggregates, made once per frame/colours version: x, y and each
        row's label colour as r, g, b (or its outlier score). Summing r, g, b per pixel and dividing
        by the count mixes the label colours exactly as ``count_cat`` does, without one count per
        label and pixel (37 labels at 1M points: 2D sums instead of a 21M-cell cube)."""
        key = (version, self.color_by)
        if self._raster_memo is None or self._raster_memo[0] != key:
            frame = self.store.frame
            data = {"x": frame["x"].to_numpy(), "y": frame["y"].to_numpy()}
            if self.color_by == "outlier score":
                data["outlier_score"] = frame["outlier_score"].to_numpy(dtype=np.float32)
            else:
                codes, names = self.store.label_codes()
                rgb = np.array([_rgb255(self.store.colors.get(name, NOISE_COLOR)) for name in names],
                               dtype=np.float32).reshape(-1, 3)
                per_row = rgb[codes] if len(codes) else np.zeros((0, 3), dtype=np.float32)
                data.update(r=per_row[:, 0], g=per_row[:, 1], b=per_row[:, 2])
            self._raster_memo = (key, pd.DataFrame(data, copy=False))
        return self._raster_memo[1]

    def _extent(self, version: int = 0) -> tuple[tuple[float, float], tuple[float, float]]:
        """The points' x and y ranges (the unzoomed map), once per frame version."""
        if self._extent_memo is None or self._extent_memo[0] != version:
            frame = self.store.frame
            ranges = tuple(_span(frame[c].to_numpy()) for c in ("x", "y"))
            self._extent_memo = (version, ranges)
        return self._extent_memo[1]

    def _canvas(self, x_range, y_range, width, height, scale):
        import datashader as ds

        full_x, full_y = self._extent(self.frame_version)
        x_range, y_range = _span(x_range or full_x), _span(y_range or full_y)
        ratio = min(max(float(scale or 1.0), 0.5), 2.0)  # a HiDPI screen: more pixels, capped at 2x
        width = max(int((width or 800) * ratio), 1)
        height = max(int((height or self.height) * ratio), 1)
        return ds.Canvas(plot_width=width, plot_height=height, x_range=x_range, y_range=y_range)

    def _map_image(self, version: int = 0, x_range=None, y_range=None, width=None, height=None,
                   scale=None) -> hv.RGB:
        """The datashaded map for the visible range and plot size: label colours mixed per pixel
        (or mean outlier score), alpha by count (eq_hist), spread where points are sparse."""
        import datashader as ds
        import datashader.transfer_functions as tf

        canvas = self._canvas(x_range, y_range, width, height, scale)
        key = (version, self.color_by, canvas.x_range, canvas.y_range, canvas.plot_width, canvas.plot_height)
        if self._image_memo is not None and self._image_memo[0] == key:
            return self._image_memo[1]  # the same view again (a first render asks twice)
        data = self._raster_data(version)
        image = shade_scores(canvas, data) if self.color_by == "outlier score" else shade_labels(canvas, data)
        self._image_memo = (key, _rgb_element(tf.dynspread(image, threshold=0.6, max_px=3), canvas))
        return self._image_memo[1]

    def _highlight_image(self, version: int = 0, x_range=None, y_range=None, width=None, height=None,
                         scale=None) -> hv.RGB:
        """The selected rows, datashaded dark over the map (nothing to draw: an empty image)."""
        canvas = self._canvas(x_range, y_range, width, height, scale)
        frame, rows = self.store.frame, self.store.selected_rows()
        if not len(rows):
            return _rgb_element(None, canvas)
        data = pd.DataFrame({"x": frame["x"].to_numpy()[rows], "y": frame["y"].to_numpy()[rows]}, copy=False)
        return _rgb_element(shade_selection(canvas, data), canvas)

    def _similar(self, rows: np.ndarray) -> hv.Points:
        frame = self.store.frame
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[(rows >= 0) & (rows < len(frame))] if frame is not None else rows[:0]
        xy = (frame["x"].to_numpy()[rows], frame["y"].to_numpy()[rows]) if len(rows) else ([], [])
        return hv.Points(xy, kdims=["x", "y"])

    def _highlight(self, version: int = 0) -> hv.Points:
        frame, rows = self.store.frame, self.store.selected_rows()
        return hv.Points((frame["x"].to_numpy()[rows], frame["y"].to_numpy()[rows]), kdims=["x", "y"])

    def _focus(self, focus: Optional[int]) -> hv.Points:
        frame = self.store.frame
        if focus is None or frame is None or not 0 <= focus < len(frame):
            return hv.Points([], kdims=["x", "y"])
        return hv.Points([(float(frame["x"].iloc[focus]), float(frame["y"].iloc[focus]))], kdims=["x", "y"])

    def plot(self) -> hv.Overlay:
        """The HoloViews object (built once per view)."""
        if self._plot is not None:
            return self._plot
        import holoviews.plotting.bokeh  # noqa: F401  the backend the options belong to

        store = self.store
        tools = ["box_select", "lasso_select"]
        focus = hv.DynamicMap(pn.bind(self._focus, focus=store.param.focus))
        similar = hv.DynamicMap(pn.bind(self._similar, rows=store.param.similar))
        by_outlier = self.color_by == "outlier score"
        if self.rasterized:
            # one datashader pass per zoom, straight to an RGB image: no per-label cube, no
            # chain of HoloViews operations (see _map_image); a few images and markers need no
            # WebGL context (costly to make, above all without a GPU): a 2D canvas draws them
            shown = hv.DynamicMap(pn.bind(self._map_image, version=self.param.frame_version),
                                  streams=[self.ranges, hv.streams.PlotSize()]).opts(
                tools=tools, backend_opts={"plot.output_backend": "canvas"}, backend="bokeh")
            marked = hv.DynamicMap(pn.bind(self._highlight_image, version=self.param.selection_version),
                                   streams=[hv.streams.RangeXY(), hv.streams.PlotSize()])
        else:
            base = hv.DynamicMap(pn.bind(self._points, version=self.param.frame_version))
            highlight = hv.DynamicMap(pn.bind(self._highlight, version=self.param.selection_version))
            shown = base.opts(
                color="outlier_score" if by_outlier else "color", cmap=OUTLIER_CMAP, clim=(0, 1),
                colorbar=by_outlier, size=self.point_size, line_color="white", line_width=0.3,
                tools=tools + ["hover"], hover_tooltips=[("file", "@name"), ("label", "@label")],
                nonselection_alpha=1.0, selection_alpha=1.0, backend="bokeh",
            )
            marked = highlight.opts(
                color=None, line_color="#111111", line_width=1.2, size=self.point_size + 3,
                fill_alpha=0, nonselection_alpha=1.0, selection_alpha=1.0, backend="bokeh",
            )
        ring = focus.opts(color=None, fill_alpha=0, line_color="#e41a1c", line_width=3, size=22, backend="bokeh")
        alike = similar.opts(marker="diamond", color="#ff9900", line_color="#000000", line_width=1, size=12,
                             backend="bokeh")
        for stream in (self.bounds, self.lasso, self.pointer, self.ranges):
            stream.source = shown
        self._built_rasterized = self.rasterized
        self._plot = (shown * marked * alike * ring).opts(
            responsive=True, height=self.height, xaxis=None, yaxis=None, show_grid=False,
            active_tools=["box_select", "wheel_zoom"], toolbar="above", show_legend=False,
            default_tools=["pan", "wheel_zoom", "box_zoom", "reset", "save"], backend="bokeh",
        )
        return self._plot

    def __panel__(self):
        if self._pane is None:
            self._pane = pn.pane.HoloViews(self.plot(), sizing_mode="stretch_width", min_height=self.height)
        return self._pane


class SelectionTable(pn.viewable.Viewer):
    """The selected rows: thumbnail, file name, label, cluster, probability, outlier score.

    A row click focuses that row (preview, ring on the map).
    """

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails_url = param.String(
        default=THUMBS_URL, allow_None=True,
        doc="URL prefix of the thumbnail route; None inlines thumbnails (no route, e.g. Jupyter).",
    )
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Thumbnails for inline mode.")
    inline_limit = param.Integer(default=300, doc="In inline mode, only this many rows get a thumbnail.")
    page_size = param.Integer(default=12, doc="Rows per page.")

    COLUMNS = ["thumb", "name", "label", "cluster", "probability", "outlier_score"]

    def __init__(self, **params):
        super().__init__(**params)
        image = _thumb_formatter(self.thumbnails_url, "44px")
        self.table = pn.widgets.Tabulator(
            value=pn.bind(self._rows, param.rx(self.store.selected_frame)),
            pagination="remote", page_size=self.page_size, show_index=False, disabled=True,
            selectable=False, sizing_mode="stretch_width", layout="fit_data_stretch",
            formatters={
                "thumb": image, "name": "plaintext", "label": "plaintext",
                "probability": {"type": "progress", "max": 1, "color": "#7fa7d1"},
                "outlier_score": {"type": "money", "precision": 3, "symbol": ""},
            },
            titles={"thumb": "", "name": "file", "outlier_score": "outlier score"},
            text_align={"cluster": "right"},
            header_filters=False,
        )
        self.table.on_click(self._on_click)

    def _rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        if frame is None or "path" not in frame:
            return pd.DataFrame({c: [] for c in self.COLUMNS})
        hashes = shown_hashes(self.store, frame.index, self.thumbnails, frame=frame)
        thumbs = thumb_cells(hashes, self.thumbnails_url, self.thumbnails, limit=self.inline_limit)
        return frame.assign(thumb=thumbs)[self.COLUMNS]

    def _on_click(self, event) -> None:
        value = self.table.value
        if event.row is not None and 0 <= event.row < len(value):
            self.store.focus = int(value.index[event.row])

    def __panel__(self):
        def count(rows, frame, limit):
            text = f"**{len(rows):,}** of {0 if frame is None else len(frame):,} images selected"
            return text + (f" · the table lists the first {limit:,}" if len(rows) > limit else "")

        count = pn.bind(count, param.rx(self.store.selected_rows), self.store.param.frame,
                        self.store.param.table_limit)
        return pn.Column(pn.pane.Markdown(count, margin=(0, 10)), self.table, sizing_mode="stretch_width")


class LabelSummary(pn.viewable.Viewer):
    """One row per label (colour, representative thumbnail, count, share, mean probability);
    a click selects that label."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails_url = param.String(
        default=THUMBS_URL, allow_None=True, doc="URL prefix of the thumbnail route; None inlines thumbnails."
    )
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Thumbnails for inline mode.")

    COLUMNS = ["color", "thumb", "label", "count", "share", "mean_probability"]

    def __init__(self, **params):
        super().__init__(**params)
        image = _thumb_formatter(self.thumbnails_url, "36px")
        self.table = pn.widgets.Tabulator(
            value=param.rx(self.store.label_summary).rx.pipe(self._rows),
            show_index=False, disabled=True, selectable=False, sizing_mode="stretch_width",
            layout="fit_data_stretch", pagination="local", page_size=10,
            formatters={
                "color": {"type": "color"}, "label": "plaintext", "thumb": image,
                "share": {"type": "money", "precision": 1, "symbol": " %", "symbolAfter": True},
                "mean_probability": {"type": "money", "precision": 2, "symbol": ""},
            },
            titles={"color": "", "thumb": "", "mean_probability": "mean prob."},
            widths={"color": 28},
        )
        self.table.on_click(self._on_click)

    def _rows(self, summary: pd.DataFrame) -> pd.DataFrame:
        hashes = shown_hashes(self.store, summary["representative"], self.thumbnails)  # allowed, when on disk
        thumbs = thumb_cells(pd.Series(hashes, dtype=object).fillna("").tolist(), self.thumbnails_url, self.thumbnails)
        return summary.assign(share=100 * summary["share"], thumb=thumbs)[self.COLUMNS]

    def _on_click(self, event) -> None:
        value = self.table.value
        if event.row is not None and 0 <= event.row < len(value):
            self.store.select_labels([value["label"].iloc[event.row]])

    def __panel__(self):
        return self.table


class LabelTools(pn.viewable.Viewer):
    """The label chooser (synced with the selection) and the label edits: relabel, rename,
    merge, undo, redo, reset, save."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    new_label = param.String(default="", doc="The label to give the selection, or the merge target.")
    rename_from = param.Selector(default=None, objects=[], allow_None=True, doc="The label to rename.")
    rename_to = param.String(default="", doc="Its new name.")

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self._sync_rename_options()
        store.param.watch(lambda *e: self._sync_rename_options(), "frame")

        def act(fn):
            def run():
                try:
                    fn()
                except (ValueError, OSError) as exc:
                    store.message = f"Not done: {exc}"
            return run

        async def save(event=None):
            try:
                await store.save_labels_async()
            except (ValueError, OSError) as exc:
                store.message = f"Not saved: {exc}"

        # options read "label (count)" (the store's names); the value is the labels themselves
        self.chooser = pn.widgets.MultiChoice.from_param(
            store.param.selected_labels, label="Labels in the selection", placeholder="choose labels",
            sizing_mode="stretch_width",
        )
        self.save_button = pn.widgets.Button(
            label="Save labels", color="primary",
            disabled=pn.bind(lambda dirty, results: not dirty or results is None or results.path is None,
                             store.param.dirty, store.param.results),
        )
        self.save_button.on_click(save)  # a coroutine: the file is written in a worker thread
        self.relabel_button = _button("Label selection", act(lambda: store.relabel(self.new_label)), color="primary")
        self.merge_button = _button(
            "Merge chosen", act(lambda: store.merge_labels(store.selected_labels, self.new_label)), variant="outline"
        )
        self.widgets = pn.Column(
            self.chooser,
            pn.widgets.Checkbox.from_param(store.param.only_selected, label="Only change selected"),
            pn.Row(
                _button("Clear labels", store.clear_labels, variant="outline"),
                _button("Clear selection", store.clear_selection, variant="outline"),
            ),
            pn.layout.Divider(),
            pn.widgets.TextInput.from_param(self.param.new_label, label="Label", placeholder="new or existing label",
                                            sizing_mode="stretch_width"),
            pn.Row(self.relabel_button, self.merge_button),
            pn.Row(
                pn.widgets.Select.from_param(self.param.rename_from, label="Rename", width=130),
                pn.widgets.TextInput.from_param(self.param.rename_to, label="to", width=130),
            ),
            _button("Rename", act(lambda: store.rename_label(self.rename_from, self.rename_to)), variant="outline"),
            pn.layout.Divider(),
            pn.Row(
                _button("Undo", store.undo, disabled=store.param.can_undo.rx.not_(), variant="outline"),
                _button("Redo", store.redo, disabled=store.param.can_redo.rx.not_(), variant="outline"),
                _button("Reset", store.reset, variant="outline"),
            ),
            self.save_button,
            text_pane(store.param.message, styles={"white-space": "pre-wrap", "font-size": "12px"}),
            sizing_mode="stretch_width",
        )

    def _sync_rename_options(self) -> None:
        labels = self.store.sorted_labels(self.store.frame)
        self.param.rename_from.objects = labels
        if self.rename_from not in labels:
            self.rename_from = labels[0] if labels else None

    def __panel__(self):
        return self.widgets


class Downloads(pn.viewable.Viewer):
    """CSV / Parquet of the selection or of all rows, and a zip of the selected images.

    The bytes are made on click and sent to the browser; nothing is written on the server.
    Served (``exports_url`` set), the zip streams from :class:`ZipExportHandler`; without a
    server route (Jupyter) it is a FileDownload of a spooled file.
    """

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    scope = param.Selector(default="selection", objects=["selection", "all"], doc="Which rows the tables hold.")
    exports_url = param.String(
        default=None, allow_None=True,
        doc="URL prefix of the streamed zip route (ROUTES); None: a FileDownload button instead.",
    )

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self.csv = pn.widgets.FileDownload(callback=lambda: store.to_csv_bytes(self.scope), filename="labels.csv",
                                           label="CSV", sizing_mode="stretch_width")
        self.parquet = pn.widgets.FileDownload(callback=lambda: store.to_parquet_bytes(self.scope),
                                               filename="labels.parquet", label="Parquet",
                                               sizing_mode="stretch_width")
        if self.exports_url:
            self.zip = self._streamed_zip_button()
        else:
            self.zip = pn.widgets.FileDownload(callback=self._zip, filename="images.zip",
                                               label="Images (zip)", sizing_mode="stretch_width")

    def _streamed_zip_button(self) -> pn.widgets.Button:
        token = secrets.token_urlsafe(24)
        exports = shared_exports()
        exports[token] = self.store
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(lambda context: exports.pop(token, None))
        self.zip_url = f"{self.exports_url}{token}/images.zip"
        button = pn.widgets.Button(
            label="Images (zip)", sizing_mode="stretch_width",
            disabled=param.rx(self.store.selected_rows).rx.pipe(lambda rows: len(rows) == 0),
        )
        # an <a download> click: the browser saves the stream; the page itself never navigates
        button.js_on_click(args={"url": self.zip_url}, code="""
            const a = document.createElement('a'); a.href = url; a.download = 'images.zip';
            document.body.appendChild(a); a.click(); a.remove();""")
        button.on_click(lambda event: setattr(
            self.store, "message", f"Zip of {len(self.store.selected_rows()):,} images: streaming to the browser."))
        return button

    async def _zip(self):
        # written off the event loop into a spooled temporary file (bounded memory while writing)
        self.store.message = "Packing the selected images…"
        fh = await asyncio.to_thread(self.store.to_zip_file)
        self.store.message = f"Zip of {len(self.store.selected_rows()):,} images ready."
        return fh

    def __panel__(self):
        return pn.Column(
            pn.widgets.RadioButtonGroup.from_param(self.param.scope, sizing_mode="stretch_width"),
            pn.Row(self.csv, self.parquet, sizing_mode="stretch_width"),
            self.zip,
            sizing_mode="stretch_width",
        )


class HoverPreview(pn.viewable.Viewer):
    """The image nearest the cursor on the map: thumbnail, file name and label (as text)."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Where the thumbnail comes from.")

    def _jpeg(self, hover: Optional[int]):
        frame = self.store.frame
        if hover is None or self.thumbnails is None or frame is None or not 0 <= hover < len(frame):
            return None
        return self.thumbnails.get(shown_hashes(self.store, [hover], self.thumbnails)[0])

    def _caption(self, hover: Optional[int]) -> str:
        frame = self.store.frame
        if hover is None or frame is None or not 0 <= hover < len(frame):
            return "Point at the map to preview an image."
        path = str(self.store.values("path", [hover])[0])
        return f"{path.rsplit('/', 1)[-1]}\n{frame['label'].iloc[hover]}"

    def __panel__(self):
        hover = self.store.param.hover
        return pn.Row(
            pn.pane.JPG(pn.bind(self._jpeg, hover), width=96, height=96, fixed_aspect=True, margin=(0, 5)),
            text_pane(pn.bind(self._caption, hover), styles={"white-space": "pre-wrap", "font-size": "12px"},
                        sizing_mode="stretch_width"),
            height=100, sizing_mode="stretch_width",
        )


class SimilarGallery(pn.viewable.Viewer):
    """'More like this': the focused image and its nearest neighbours in embedding space, as a
    gallery (also drawn on the map as orange diamonds); one click selects them all."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails_url = param.String(default=THUMBS_URL, allow_None=True, doc="Thumbnail route prefix; None inlines.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Thumbnails for inline mode.")

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self.find_button = pn.widgets.Button(label="More like this", color="primary",
                                             disabled=store.param.focus.rx.is_(None))
        self.find_button.on_click(self._find)
        self.select_button = _button("Select these", store.select_similar, variant="outline",
                                     disabled=store.param.similar.rx.pipe(len) == 0)

    async def _find(self, event=None) -> None:
        # the first query may build the neighbour index (seconds at 1M images): off the event loop
        store = self.store
        store.message = "Looking for similar images…"
        focus, k = store.focus, store.similar_k
        index = await asyncio.to_thread(store.neighbour_index)
        if index is None:
            store.message = "These results hold no embeddings: 'more like this' needs them."
            return
        store.more_like_this(focus, k)

    def _html(self, similar: np.ndarray, scores: np.ndarray) -> str:
        store, frame = self.store, self.store.frame
        if frame is None or not len(similar):
            return "<p style='color:#777'>Click an image (a table row), then <b>More like this</b>.</p>"
        rows = [r for r in [store.focus] if r is not None] + [int(r) for r in similar]
        names, labels = store.file_names(rows), frame["label"].to_numpy()[rows]
        srcs = thumb_sources(shown_hashes(store, rows, self.thumbnails), self.thumbnails_url, self.thumbnails)
        captions = (["this image"] if store.focus is not None else []) + [f"{s:.3f}" for s in scores]
        items = zip(srcs, captions, names, labels)
        return figures_html([(src, cap, f"{name} · {label}") for src, cap, name, label in items])

    def __panel__(self):
        return pn.Column(
            pn.Row(self.find_button, self.select_button,
                   pn.widgets.IntInput.from_param(self.store.param.similar_k, label="", width=80)),
            pn.pane.HTML(pn.bind(self._html, self.store.param.similar, self.store.param.similar_scores),
                         sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )


class ClusterGallery(pn.viewable.Viewer):
    """Per label, its most representative images (highest membership first) in a grid."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails_url = param.String(default=THUMBS_URL, allow_None=True, doc="Thumbnail route prefix; None inlines.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Thumbnails for inline mode.")
    per_label = param.Integer(default=8, bounds=(1, 50), doc="Images shown per label.")
    max_labels = param.Integer(default=60, bounds=(1, None), doc="Labels shown (the first, in the chooser's order).")
    visible = param.Boolean(default=True, doc="Whether the gallery is on screen (it is only made when it is).")

    def _html(self, frame: pd.DataFrame, per_label: int, visible: bool = True) -> str:
        if not visible:
            return ""
        store = self.store
        gallery = store.cluster_gallery(k=per_label)
        if not len(gallery):
            return "<p style='color:#777'>No images.</p>"
        counts = frame["label"].value_counts()
        shown = gallery[gallery["label"].isin(gallery["label"].unique()[: self.max_labels])]
        rows = shown["row"].to_numpy(dtype=np.int64)  # every image shown, read in one go
        names = dict(zip(rows.tolist(), store.file_names(rows)))
        hashes = dict(zip(rows.tolist(), shown_hashes(store, rows, self.thumbnails)))
        parts = []
        for number, (label, group) in enumerate(gallery.groupby("label", sort=False)):
            if number >= self.max_labels:
                parts.append(f"<p>… and {gallery['label'].nunique() - self.max_labels} more labels.</p>")
                break
            rows = group["row"].tolist()
            srcs = thumb_sources([hashes[r] for r in rows], self.thumbnails_url, self.thumbnails)
            color = html.escape(store.colors.get(label, "#000000"))
            parts.append(
                f'<div style="margin:6px 0"><span style="display:inline-block;width:12px;height:12px;'
                f'background:{color};margin-right:6px"></span><b>{html.escape(str(label))}</b> '
                f'<span style="color:#777">({int(counts.get(label, 0)):,})</span>'
                + figures_html([(src, names[r], f"{names[r]} · {label}") for src, r in zip(srcs, rows)], size=72)
                + "</div>"
            )
        return "".join(parts)

    def __panel__(self):
        return pn.Column(
            pn.pane.Markdown("Each label's most representative images. Click a label in the *Labels* table to "
                             "select it.", margin=(0, 10)),
            pn.pane.HTML(pn.bind(self._html, self.store.param.frame, self.param.per_label, self.param.visible),
                         sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )


class DuplicatesView(pn.viewable.Viewer):
    """Exact duplicates (same content) and near-duplicates (cosine ≥ threshold) as groups with
    keep/drop marks (editable); select the drops on the map, or download the groups as CSV."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails_url = param.String(default=THUMBS_URL, allow_None=True, doc="Thumbnail route prefix; None inlines.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Thumbnails for inline mode.")

    COLUMNS = ["thumb", "group", "name", "label", "kind", "similarity", "keep", "row"]

    def __init__(self, **params):
        super().__init__(**params)
        self.table = pn.widgets.Tabulator(
            value=pd.DataFrame({c: [] for c in self.COLUMNS}), pagination="local", page_size=12, show_index=False,
            selectable=False, sizing_mode="stretch_width", layout="fit_data_stretch",
            formatters={"thumb": _thumb_formatter(self.thumbnails_url, "40px"), "name": "plaintext",
                        "label": "plaintext", "keep": {"type": "tickCross"},
                        "similarity": {"type": "money", "precision": 3, "symbol": ""}},
            editors={c: None for c in self.COLUMNS if c != "keep"} | {"keep": "tickCross"},
            titles={"thumb": "", "name": "file"}, hidden_columns=["row"], groupby=["group"],
        )
        self.find_button = pn.widgets.Button(label="Find duplicates", color="primary")
        self.find_button.on_click(self._find)
        self.select_button = _button("Select the drops", self._select_drops, variant="outline")
        self.csv = pn.widgets.FileDownload(callback=self._csv, filename="duplicates.csv", label="Groups (CSV)",
                                           variant="outline")

    async def _find(self, event=None) -> None:
        store = self.store
        store.message = "Looking for duplicates…"
        groups = await asyncio.to_thread(store.duplicates)
        rows = groups["row"].to_numpy(dtype=np.int64)
        thumbs = thumb_cells(shown_hashes(store, rows, self.thumbnails), self.thumbnails_url, self.thumbnails)
        self.table.value = groups.assign(name=store.file_names(rows), thumb=thumbs)[self.COLUMNS]
        store.message = (f"{groups['group'].nunique():,} groups, {int((~groups['keep']).sum()):,} images to drop "
                         f"(threshold {store.duplicate_threshold:.2f}).")

    def _select_drops(self) -> None:
        value = self.table.value
        self.store.select_rows(value.loc[~value["keep"].astype(bool), "row"].to_numpy())

    def _csv(self) -> io.BytesIO:
        value = self.table.value
        paths = self.store.values("path", value["row"].to_numpy(dtype=np.int64)) if len(value) else []
        out = value.assign(path=paths, action=np.where(value["keep"].astype(bool), "keep", "drop"))
        columns = ["group", "path", "label", "kind", "similarity", "action"]
        return io.BytesIO(out[columns].to_csv(index=False).encode("utf-8"))

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.widgets.FloatSlider.from_param(self.store.param.duplicate_threshold, label="near if cosine ≥",
                                                     step=0.005, width=220),
                   self.find_button, self.select_button, self.csv),
            self.table,
            sizing_mode="stretch_width",
        )


class ExploreTools(pn.viewable.Viewer):
    """Sidebar tools that act on clusters: colour by outlier score, show outliers, split the
    selection into clusters."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    scatter = param.ClassSelector(class_=ScatterView, doc="The map whose colouring this switches.")
    split = param.Boolean(default=True, doc="Offer 'Split selection' (needs hdbscan).")

    def __panel__(self):
        store = self.store
        return pn.Column(
            pn.widgets.RadioButtonGroup.from_param(self.scatter.param.color_by, sizing_mode="stretch_width"),
            pn.widgets.FloatSlider.from_param(store.param.outlier_share, label="Outliers: top share", step=0.005,
                                              end=0.2, format="0.0%", sizing_mode="stretch_width"),
            pn.Row(
                _button("Show outliers", store.select_outliers, variant="outline"),
                _button("Split selection", self._split, variant="outline", visible=self.split),
            ),
            sizing_mode="stretch_width",
        )

    def _split(self) -> None:
        try:
            self.store.split_selection()
        except (ValueError, ImportError) as exc:
            self.store.message = f"Not split: {exc}"


class ImagePreview(pn.viewable.Viewer):
    """The focused image, large, with its file name and label (as text, never HTML)."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, doc="Where the preview bytes come from.")

    def _image(self, focus: Optional[int], frame: pd.DataFrame):
        if focus is None or frame is None or not 0 <= focus < len(frame):
            return text_pane("Click a row of the table to see the image.", styles={"color": "#777"})
        shown = self.store.rows_frame([focus])
        row = shown.iloc[0]
        jpeg = (self.thumbnails.get(shown_hashes(self.store, [focus], self.thumbnails, frame=shown)[0], PREVIEW_SIZE)
                if self.thumbnails else None)
        caption = text_pane(f"{row['path']}\n{row['label']} · p={row['probability']:.2f}",
                              styles={"white-space": "pre-wrap", "font-size": "12px"})
        if jpeg is None:
            return pn.Column(caption, text_pane("(image not available)"))
        return pn.Column(pn.pane.JPG(jpeg, height=240, sizing_mode="stretch_width", fixed_aspect=True), caption)

    def __panel__(self):
        return pn.panel(pn.bind(self._image, self.store.param.focus, self.store.param.frame), min_height=260)


SYSTEM_FONTS = 'system-ui, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif'


class OfflineFast(Fast):
    """Panel's Fast design without its web font (Open Sans, from fonts.googleapis.com): every
    file the page then loads comes from the server itself."""

    _resources = {
        **Fast._resources,
        "font": {},
        # Fast's module, named in full (a relative name would resolve under this class's name)
        "js_modules": {**Fast._resources["js_modules"], "fast-design": f"{CDN_DIST}bundled/fast/js/fast_design.js"},
    }


def page_template(**params) -> pn.template.FastListTemplate:
    """The served pages' template: Panel's FastListTemplate in :class:`OfflineFast` and the
    system's fonts, so a page loads nothing from outside the server (no script, style sheet or
    font) and looks the same on a network with no internet.

    >>> page_template(title="bulk_panel", main=[...]).servable()
    """
    return pn.template.FastListTemplate(**{"design": OfflineFast, "font": SYSTEM_FONTS, **params})


class Dashboard(pn.viewable.Viewer):
    """The whole page: map, selection table, label summary, preview, label tools, downloads.

    >>> Dashboard(store=ResultsStore.from_path("results.parquet"))           # Jupyter
    >>> Dashboard(store=store).servable()                                   # FastListTemplate
    """

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, doc="The (shared) thumbnail cache.")
    thumbnails_url = param.String(default=THUMBS_URL, allow_None=True,
                                  doc="Thumbnail route prefix; None inlines thumbnails (Jupyter).")
    rasterize_above = param.Integer(default=20_000, doc="Datashade the map above this many points.")
    title = param.String(default="bulk_panel", doc="Page title.")
    runner = param.ClassSelector(class_=PipelineRunner, allow_None=True,
                                 doc="Runs the pipeline from the page (folder, settings, Run); None hides it.")
    tool_tabs = param.ListSelector(
        default=["similar", "gallery", "duplicates"], objects=["similar", "gallery", "duplicates"],
        doc="The tool tabs beside the selection table (more like this needs embeddings; duplicates and "
            "splitting need scipy/hdbscan, which a shared static page does not have).",
    )

    def __init__(self, **params):
        super().__init__(**params)
        if self.thumbnails is None:
            self.thumbnails = shared_thumbnails()
        store = self.store
        self._register()
        store.param.watch(self._register, "results")  # new results (a pipeline run): allow their images
        self.scatter = ScatterView(store=store, rasterize_above=self.rasterize_above)
        self.table = SelectionTable(store=store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails)
        self.summary = LabelSummary(store=store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails)
        self.tools = LabelTools(store=store)
        # the zip streams from the server's route when there is one (thumbnails_url says so)
        self.downloads = Downloads(store=store, exports_url=EXPORTS_URL if self.thumbnails_url else None)
        self.preview = ImagePreview(store=store, thumbnails=self.thumbnails)
        self.hover = HoverPreview(store=store, thumbnails=self.thumbnails)
        thumbs = dict(store=store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails)
        self.similar = SimilarGallery(**thumbs)
        self.gallery = ClusterGallery(**thumbs, visible=False)  # made when its tab opens (sorts every row)
        self.duplicates = DuplicatesView(**thumbs)
        self.explore = ExploreTools(store=store, scatter=self.scatter, split="duplicates" in self.tool_tabs)
        tabs = {"similar": ("More like this", self.similar), "gallery": ("Cluster gallery", self.gallery),
                "duplicates": ("Duplicates", self.duplicates)}
        self._tab_of = {name: number for number, name in enumerate(["table", *self.tool_tabs])}
        self.tabs = _tabs_on_demand(("Selection", self.table), *[tabs[name] for name in self.tool_tabs],
                                    sizing_mode="stretch_width")
        self.tabs.param.watch(
            lambda event: setattr(self.gallery, "visible", event.new == self._tab_of.get("gallery")), "active")
        self.more_button = pn.widgets.Button(label="More like this", variant="outline",
                                             disabled=store.param.focus.rx.is_(None),
                                             visible="similar" in self.tool_tabs)
        self.more_button.on_click(self._more_like_this)
        self.controls = PipelineControls(runner=self.runner) if self.runner is not None else None
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.onload(self._warm)  # after the page is drawn, off the event loop

    async def _warm(self) -> None:
        await asyncio.to_thread(self.store.warm)

    async def _more_like_this(self, event=None) -> None:
        self.tabs.active = self._tab_of["similar"]
        await self.similar._find()

    @classmethod
    def from_path(cls, path: str | Path, **params) -> "Dashboard":
        """A dashboard on the results file at ``path``, read once per process and file version.

        >>> pn.serve({"bulk_panel": lambda: Dashboard.from_path("results.parquet").template()})
        """
        return cls(store=ResultsStore(results=shared_results(path)), **params)

    def _register(self, *events) -> None:
        results = self.store.results
        # the shared cache, or paths on disk: the views allow the images they show, as they show them
        if results is not None and not results.on_disk and not isinstance(self.thumbnails, ShownThumbnails):
            self.thumbnails.register(results.image_root, results.frame)

    @staticmethod
    def _header(results: Optional[Results]) -> str:
        frame = None if results is None else results.frame
        n = 0 if frame is None else len(frame)
        clusters = 0 if frame is None else int((frame["cluster"].unique() >= 0).sum())
        return f"Map · {n:,} images · {clusters} clusters"

    def sidebar(self) -> list:
        pipeline = [pn.pane.Markdown("### Pipeline"), self.controls] if self.controls is not None else []
        return [
            *pipeline,
            pn.pane.Markdown("### Labels"), self.tools,
            _on_demand("Explore", self.explore),
            pn.pane.Markdown("### Download"), self.downloads,
        ]

    def main(self) -> list:
        card = dict(sizing_mode="stretch_width", margin=(5, 5), collapsible=False)
        return [
            pn.Row(
                pn.Card(self.scatter, self.hover, title=pn.bind(self._header, self.store.param.results), **card),
                pn.Column(
                    pn.Card(self.preview, self.more_button, title="Image", **card),
                    pn.Card(self.summary, title="Labels", **card),
                    width=420,
                ),
                sizing_mode="stretch_width",
            ),
            pn.Card(self.tabs, title="Selection and tools", **card),
        ]

    def template(self) -> pn.template.FastListTemplate:
        """The served page."""
        # one root per area: every root added to a Bokeh document walks all models again
        return page_template(
            title=self.title, sidebar=[pn.Column(*self.sidebar(), sizing_mode="stretch_width")],
            main=[pn.Column(*self.main(), sizing_mode="stretch_width")], sidebar_width=330,
            accent="#3f6fb5", main_layout=None,
        )

    def servable(self, title: Optional[str] = None, location: bool = True, area: str = "main", target=None):
        return self.template().servable(title=title or self.title, location=location)

    def __panel__(self):
        return pn.Row(
            pn.Column(*self.sidebar(), width=320),
            pn.Column(*self.main(), sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
