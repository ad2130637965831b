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

__all__ = ["LabelSummary", "SelectionTable", "typed"]

#: a thumbnail keeps its aspect inside its column, however wide the image
THUMB_CSS = ".tabulator-cell[tabulator-field='thumb'] img { max-width: 100%; object-fit: contain; }"


def typed(frame: pd.DataFrame, types: dict) -> pd.DataFrame:
    """``frame``'s columns ``types`` (names → dtypes), in that order and of those types.

    A table's rows keep the same column types whatever they hold (none included): Panel sends
    the Tabulator a new configuration when a column's type changes (an empty column is a float
    one), and the browser then rebuilds the whole table, dropping rows that arrive meanwhile.
    """
    return frame[list(types)].astype(types)


class SelectionTable(pn.viewable.Viewer):
    """The selected rows: thumbnail, file name, label, membership probability, outlier score.

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

    TYPES = {"thumb": object, "name": object, "label": object, "probability": "float64", "outlier_score": "float64"}
    COLUMNS = list(TYPES)

    def __init__(self, **params):
        super().__init__(**params)
        image = thumb_formatter(self.thumbnails_url, "44px")
        self.table = pn.widgets.Tabulator(
            value=pn.bind(self._rows, param.rx(self.store.selected_frame)),
            pagination="remote", page_size=self.page_size, show_index=False, disabled=True,
            selectable=False, sizing_mode="stretch_width", layout="fit_columns", stylesheets=[THUMB_CSS],
            widths={"thumb": 64, "probability": 76, "outlier_score": 80},
            formatters={
                "thumb": image, "name": "plaintext", "label": "plaintext",
                "probability": {"type": "progress", "max": 1, "color": "#7fa7d1"},
                "outlier_score": {"type": "money", "precision": 3, "symbol": ""},
            },
            titles={"thumb": "", "name": "file", "probability": "prob.", "outlier_score": "outlier"},
            header_filters=False,
        )
        self.table.on_click(self._on_click)

    def _rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        if frame is None or "path" not in frame:
            frame = pd.DataFrame({"path": [], "name": [], "label": [], "probability": [], "outlier_score": []})
        hashes = shown_hashes(self.store, frame.index, self.thumbnails, frame=frame)
        thumbs = thumb_cells(hashes, self.thumbnails_url, self.thumbnails, limit=self.inline_limit)
        return typed(frame.assign(thumb=thumbs), self.TYPES)

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
    """One row per label (colour, representative thumbnail, suggested name, count, share, mean
    probability); a click selects that label, a click on "✓ accept" gives the label its
    suggested name. Under the table: "Accept N suggestions ≥ X%" with its agreement slider.

    A suggestion reads "lighthouse · 41% of 58": the name from the model's ImageNet predictions,
    and the share of the cluster's 58 members whose own top class is in it. Only labels that
    are still a cluster's "cluster N" have one; accepting renames the label (undoable).
    """

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails_url = param.String(
        default=THUMBS_URL, allow_None=True, doc="URL prefix of the thumbnail route; None inlines thumbnails."
    )
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Thumbnails for inline mode.")
    min_agreement = param.Number(
        default=0.7, bounds=(0.0, 1.0), step=0.05,
        doc="The bulk accept's threshold: suggestions whose agreement reaches it (0: all of them). "
            "No threshold made suggestions mostly right in docs/performance.md: accepting is the user's call.",
    )

    COLUMNS = ["color", "thumb", "label", "suggestion", "accept", "count", "mean_probability"]
    ACCEPT = "✓ accept"

    def __init__(self, **params):
        super().__init__(**params)
        image = thumb_formatter(self.thumbnails_url, "36px")
        self.table = pn.widgets.Tabulator(
            value=param.rx(self.store.label_summary).rx.pipe(self._rows),
            show_index=False, disabled=True, selectable=False, sizing_mode="stretch_width",
            layout="fit_columns", pagination="local", page_size=10, stylesheets=[THUMB_CSS],
            formatters={
                "color": {"type": "color"}, "label": "plaintext", "thumb": image,
                "suggestion": "plaintext", "accept": "plaintext",
                "mean_probability": {"type": "money", "precision": 2, "symbol": ""},
            },
            titles={"color": "", "thumb": "", "accept": "", "mean_probability": "mean prob."},
            widths={"color": 26, "thumb": 48, "accept": 64, "count": 60, "mean_probability": 72},
        )
        self.table.on_click(self._on_click)
        frame = self.store.param.frame  # suggestions change with the frame (a load replaces both)
        self.agreement = pn.widgets.FloatSlider.from_param(
            self.param.min_agreement, name="agreement ≥", format="0%", width=160, margin=(0, 10),
        )
        self.accept_button = pn.widgets.Button(
            label=pn.bind(self._bulk_text, self.param.min_agreement, frame), button_type="default",
            disabled=pn.bind(lambda *_: self._qualifying() == 0, self.param.min_agreement, frame),
        )
        self.accept_button.on_click(lambda event: self.store.accept_suggestions(self.min_agreement))
        self.bulk = pn.Row(
            self.agreement, self.accept_button, sizing_mode="stretch_width",
            visible=pn.bind(lambda _: len(self.store.suggestions()) > 0, frame),
        )

    def _rows(self, summary: pd.DataFrame) -> pd.DataFrame:
        hashes = shown_hashes(self.store, summary["representative"], self.thumbnails)  # allowed, when on disk
        thumbs = thumb_cells(pd.Series(hashes, dtype=object).fillna("").tolist(), self.thumbnails_url, self.thumbnails)
        suggestions = self.store.suggestions()
        text = {label: suggestion_text(row.suggestion, row.agreement, row.size)
                for label, row in zip(suggestions.index, suggestions.itertuples())}
        shown = summary["label"].map(text).fillna("")
        return summary.assign(
            thumb=thumbs, suggestion=shown,
            accept=[self.ACCEPT if t else "" for t in shown],
        )[self.COLUMNS]

    def _qualifying(self) -> int:
        """How many suggestions the bulk accept would take now (before skipping taken names)."""
        agreement = self.store.suggestions()["agreement"]
        return len(agreement) if self.min_agreement <= 0 else int((agreement >= self.min_agreement).sum())

    def _bulk_text(self, *_) -> str:
        n = self._qualifying()
        many = "s" if n != 1 else ""
        if self.min_agreement <= 0:
            return f"Accept all suggestions ({n})"
        return f"Accept {n} suggestion{many} ≥ {100 * self.min_agreement:.0f}%"

    def _on_click(self, event) -> None:
        value = self.table.value
        if event.row is None or not 0 <= event.row < len(value):
            return
        label = value["label"].iloc[event.row]
        if getattr(event, "column", None) == "accept" and value["accept"].iloc[event.row]:
            self.store.accept_suggestion(label)
        else:
            self.store.select_labels([label])

    def __panel__(self):
        return pn.Column(self.table, self.bulk, sizing_mode="stretch_width")


def suggestion_text(name: str, agreement: float, size: float) -> str:
    """A suggestion as the Labels table shows it: 'lighthouse · 41% of 58' (agreement and size
    left out when unknown, as in older files)."""
    if pd.isna(agreement):
        return name
    return f"{name} · {100 * agreement:.0f}%" + ("" if pd.isna(size) else f" of {int(size):,}")
