"""The Suggest tab: labels learnt from the person's, reviewed a page at a time.

>>> SuggestionsView(store=store, thumbnails=shared_thumbnails())

With "Learn from my labels" on, every label edit of the person is followed by a retrain off the
event loop (:meth:`~bulk_panel.state.ResultsStore.learn_async`), and every label the person has
not given becomes a prediction. The page lists the least certain predictions first: accept the
page, accept every prediction above a confidence, or correct a label in the table (a click on
its cell). The line above counts labels by source.
"""
from __future__ import annotations

import pandas as pd
import panel as pn
import param

from ..compute.thumbs import ThumbnailCache
from ..state import ResultsStore
from ._thumbs import THUMBS_URL, shown_hashes, thumb_cells, thumb_formatter
from .tables import THUMB_CSS, typed

__all__ = ["SuggestionsView", "source_line"]


def source_line(store: ResultsStore, person: str = "labelled by you") -> str:
    """The labels by source, as Markdown: "**120** labelled by you · **9,880** predicted · **0**
    not labelled yet" (``person``: how to name the person's labels)."""
    counts = store.source_counts() if store.frame is not None and len(store.frame) else {}
    return (f"**{counts.get('person', 0):,}** {person} · **{counts.get('prediction', 0):,}** predicted · "
            f"**{counts.get('cluster', 0):,}** not labelled yet")


class SuggestionsView(pn.viewable.Viewer):
    """Learning on or off, the counts by source, a page of the least certain predictions."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails_url = param.String(default=THUMBS_URL, allow_None=True,
                                  doc="URL prefix of the thumbnail route; None inlines thumbnails.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Thumbnails for inline mode.")
    page_size = param.Integer(default=50, bounds=(1, None), doc="Suggestions per page.")
    min_confidence = param.Number(default=0.9, bounds=(0.0, 1.0), step=0.05,
                                  doc="Accept every prediction at least this sure.")

    TYPES = {"thumb": object, "name": object, "label": object, "confidence": "float64"}

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self.toggle = pn.widgets.Checkbox.from_param(store.param.learning, name="Learn from my labels",
                                                     css_classes=["bp-learn"])
        self.table = pn.widgets.Tabulator(
            value=pn.bind(self._page, store.param.frame), show_index=False, selectable=False,
            pagination="local", page_size=10, sizing_mode="stretch_width", layout="fit_columns",
            stylesheets=[THUMB_CSS], widths={"thumb": 64, "confidence": 76},
            formatters={"thumb": thumb_formatter(self.thumbnails_url, "44px"), "name": "plaintext",
                        "label": "plaintext", "confidence": {"type": "progress", "max": 1, "color": "#9bc48f"}},
            editors={"thumb": None, "name": None, "confidence": None, "label": "input"},
            titles={"thumb": "", "name": "file", "label": "predicted label (click to correct)", "confidence": "sure"},
        )
        self.table.on_edit(self._corrected)
        self.accept_page = pn.widgets.Button(name="Accept this page", button_type="primary")
        self.accept_page.on_click(lambda event: self.store.accept_predictions(self.table.value.index.to_numpy()))
        self.accept_sure = pn.widgets.Button(name=param.rx("Accept all ≥ {:.0%}").format(self.param.min_confidence))
        self.accept_sure.on_click(lambda event: self.store.accept_confident(self.min_confidence))
        self.threshold = pn.widgets.FloatSlider.from_param(self.param.min_confidence, name="", width=140)
        store.param.watch(self._learn_now, "learning")
        store.param.watch(self._learn_after_edit, "person_edits")

    def _learn_now(self, event) -> None:
        if event.new:
            pn.state.execute(self.store.learn_async)

    def _learn_after_edit(self, event) -> None:
        if self.store.learning:
            pn.state.execute(self.store.learn_async)

    def _page(self, frame: pd.DataFrame) -> pd.DataFrame:
        rows = self.store.suggestion_rows()[: self.page_size] if frame is not None else []
        if not len(rows):
            return typed(pd.DataFrame({c: [] for c in self.TYPES}), self.TYPES)
        page = self.store.rows_frame(rows, ["label", "confidence", "content_hash"])
        hashes = shown_hashes(self.store, rows, self.thumbnails, frame=page)
        return typed(page.assign(thumb=thumb_cells(hashes, self.thumbnails_url, self.thumbnails),
                                 name=self.store.file_names(rows)), self.TYPES)

    def _corrected(self, event) -> None:
        if event.column == "label" and 0 <= event.row < len(self.table.value):
            row = int(self.table.value.index[event.row])
            try:
                self.store.correct(row, event.value)
            except ValueError as exc:  # an empty label
                self.store.message = str(exc)

    def __panel__(self):
        if not self.store.can_learn():
            return pn.pane.Markdown("These results have no embeddings to learn from.", margin=(0, 10))
        return pn.Column(
            self.toggle,
            pn.pane.Markdown(pn.bind(lambda frame: source_line(self.store), self.store.param.frame), margin=(0, 10)),
            pn.Row(self.accept_page, self.accept_sure, self.threshold),
            self.table, sizing_mode="stretch_width",
        )
