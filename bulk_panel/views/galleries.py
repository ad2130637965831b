"""The tool tabs and the cluster tools: more like this, the cluster gallery, duplicates,
outliers and splitting.

>>> SimilarGallery(store=store); ClusterGallery(store=store); DuplicatesView(store=store)
>>> ExploreTools(store=store, scatter=scatter)
"""
from __future__ import annotations

import asyncio
import html
import io

import numpy as np
import pandas as pd
import panel as pn
import param

from ..compute.thumbs import ThumbnailCache
from ..state import ResultsStore
from ._thumbs import THUMBS_URL, figures_html, shown_hashes, thumb_cells, thumb_formatter, thumb_sources
from ._widgets import button
from .map import ScatterView
from .tables import typed

__all__ = ["ClusterGallery", "DuplicatesView", "ExploreTools", "SimilarGallery"]


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
        self.select_button = button("Select these", store.select_similar, variant="outline",
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

    # the table's column types, before the first search too (see views.tables.typed)
    TYPES = {"thumb": object, "group": "int64", "name": object, "label": object, "kind": object,
             "similarity": "float64", "keep": bool, "row": "int64"}
    COLUMNS = list(TYPES)

    def __init__(self, **params):
        super().__init__(**params)
        self.table = pn.widgets.Tabulator(
            value=typed(pd.DataFrame(columns=self.COLUMNS), self.TYPES), pagination="local", page_size=12,
            show_index=False, selectable=False, sizing_mode="stretch_width", layout="fit_data_stretch",
            formatters={"thumb": thumb_formatter(self.thumbnails_url, "40px"), "group": "plaintext",
                        "name": "plaintext", "label": "plaintext", "kind": "plaintext", "keep": {"type": "tickCross"},
                        "similarity": {"type": "money", "precision": 3, "symbol": ""}},
            editors={c: None for c in self.COLUMNS if c != "keep"} | {"keep": "tickCross"},
            titles={"thumb": "", "name": "file"}, hidden_columns=["row"], groupby=["group"],
        )
        self.find_button = pn.widgets.Button(label="Find duplicates", color="primary")
        self.find_button.on_click(self._find)
        self.select_button = button("Select the drops", self._select_drops, variant="outline")
        self.csv = pn.widgets.FileDownload(callback=self._csv, filename="duplicates.csv", label="Groups (CSV)",
                                           variant="outline")

    async def _find(self, event=None) -> None:
        store = self.store
        store.message = "Looking for duplicates…"
        groups = await asyncio.to_thread(store.duplicates)
        rows = groups["row"].to_numpy(dtype=np.int64)
        thumbs = thumb_cells(shown_hashes(store, rows, self.thumbnails), self.thumbnails_url, self.thumbnails)
        self.table.value = typed(groups.assign(name=store.file_names(rows), thumb=thumbs), self.TYPES)
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
                button("Show outliers", store.select_outliers, variant="outline"),
                button("Split selection", self._split, variant="outline", visible=self.split),
            ),
            sizing_mode="stretch_width",
        )

    def _split(self) -> None:
        try:
            self.store.split_selection()
        except (ValueError, ImportError) as exc:
            self.store.message = f"Not split: {exc}"
