"""The tables: the selected rows (:class:`SelectionTable`) and one row per label (:class:`LabelSummary`).

>>> SelectionTable(store=store, thumbnails=shared_thumbnails())
>>> LabelSummary(store=store)
"""
from __future__ import annotations

import pandas as pd
import panel as pn
import param

from ..compute.thumbs import ThumbnailCache
from ..state import ResultsStore
from ._thumbs import THUMBS_URL, shown_hashes, thumb_cells, thumb_formatter

__all__ = ["LabelSummary", "SelectionTable"]


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
        image = thumb_formatter(self.thumbnails_url, "44px")
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
        image = thumb_formatter(self.thumbnails_url, "36px")
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
