"""The datashaded map's images: label colours mixed per pixel, outlier scores, the selection.

>>> shade_labels(ds.Canvas(plot_width=800, plot_height=600), data)   # data: x, y, r, g, b
>>> fade(image)              # the map under a selection: its alpha times FADE
>>> shade_selection(canvas, data.iloc[rows])   # the selected rows in their own colours, on top
>>> warm_datashader()        # at server start: compile the kernels before the first page
"""
from __future__ import annotations

import functools
import threading

import holoviews as hv
import numpy as np
import pandas as pd

__all__ = ["CONFIDENCE_CMAP", "FADE", "OUTLIER_CMAP", "SCORES", "fade", "mixed_colours", "rgb255", "rgb_element", "shade_labels",
           "shade_scores", "shade_selection", "span", "warm_datashader"]

OUTLIER_CMAP = ["#1b1b3a", "#3b4cc0", "#9fbfe0", "#f7b267", "#e4572e"]  # typical → unusual
CONFIDENCE_CMAP = ["#d7301f", "#fc8d59", "#fee08b", "#91cf60", "#1a9850"]  # unsure → sure (the person's: 1)
#: the map's colourings by a number per row, 0..1: "colour by" → (column, palette low → high)
SCORES = {"outlier score": ("outlier_score", OUTLIER_CMAP), "confidence": ("confidence", CONFIDENCE_CMAP)}
FADE = 0.2  # the alpha of the points left out of a selection, relative to their own (as Bokeh's nonselection_alpha)
SELECTED_MIN_ALPHA = 170  # the faintest selected pixel: selected points stand out even where they are few


def rgb255(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return tuple(int(color[i : i + 2], 16) for i in (0, 2, 4))


def span(values) -> tuple[float, float]:
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


def shade_labels(canvas, data: pd.DataFrame, min_alpha: int = 90):
    """The map's label colours mixed per pixel, alpha by count: ``data`` has x, y and each row's
    colour as r, g, b (0-255)."""
    import datashader as ds

    # four plain aggregations (count, then one sum per channel, all through one column name so
    # they share one compiled kernel) beat one fused summary here
    sums = [canvas.points(pd.DataFrame({"x": data["x"], "y": data["y"], "value": data[c]}, copy=False),
                          "x", "y", ds.sum("value")) for c in ("r", "g", "b")]
    return mixed_colours(canvas.points(data, "x", "y", ds.count()), *sums, min_alpha=min_alpha)


def shade_scores(canvas, data: pd.DataFrame, min_alpha: int = 90):
    """The map coloured by each pixel's mean score: ``data`` has x, y and one column of
    :data:`SCORES` (outlier_score or confidence), 0..1, NaN where a row has none."""
    import datashader as ds
    import datashader.transfer_functions as tf

    column, cmap = next(value for value in SCORES.values() if value[0] in data)
    mean = canvas.points(data, "x", "y", ds.mean(column))
    if column == "confidence":  # a confidence reads as itself: 0.5 is half way whatever the others are
        return tf.shade(mean, cmap=cmap, how="linear", span=(0, 1), min_alpha=min_alpha)
    return tf.shade(mean, cmap=cmap, min_alpha=min_alpha)


def fade(image, alpha: float = FADE):
    """``image`` (a datashader RGBA image) with every pixel's alpha times ``alpha``, colours kept:
    the map under a selection, so that the selected points drawn over it stand out."""
    import datashader.transfer_functions as tf

    data = np.asarray(image.data, dtype=np.uint32)
    faded = ((data >> 24).astype(np.float32) * alpha).astype(np.uint32)
    return tf.Image((data & 0x00FFFFFF) | (faded << 24), coords=image.coords, dims=image.dims)


def shade_selection(canvas, data: pd.DataFrame):
    """The selected rows in their own colours, to draw over the faded map: ``data`` has x, y and
    r, g, b (label colours, mixed per pixel as :func:`shade_labels` mixes them) or a score.
    Alpha by count from ``SELECTED_MIN_ALPHA`` up, spread a little so that a few points show;
    transparent elsewhere."""
    import datashader.transfer_functions as tf

    if "r" in data:
        image = shade_labels(canvas, data, min_alpha=SELECTED_MIN_ALPHA)
    else:
        image = shade_scores(canvas, data, min_alpha=SELECTED_MIN_ALPHA)
    return tf.dynspread(image, threshold=0.6, max_px=3)


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
        fade(tf.dynspread(shade_labels(canvas, frame), threshold=0.6, max_px=3))
        shade_scores(canvas, frame)
        shade_selection(canvas, frame[["x", "y", "r", "g", "b"]])

    thread = threading.Thread(target=run, name="bulk_panel-warm-datashader", daemon=True)
    thread.start()
    return thread


def rgb_element(image, canvas) -> hv.RGB:
    """An hv.RGB of a datashader image (rows bottom-up) over the canvas' ranges; None: transparent."""
    (x0, x1), (y0, y1) = canvas.x_range, canvas.y_range
    h, w = canvas.plot_height, canvas.plot_width
    data = np.zeros((h, w), dtype=np.uint32) if image is None else np.asarray(image.data, dtype=np.uint32)
    rgba = np.ascontiguousarray(data[::-1]).view(np.uint8).reshape(h, w, 4)  # hv.RGB: top row first
    return hv.RGB(rgba, bounds=(x0, y0, x1, y1), vdims=["R", "G", "B", "A"])
