"""The shared page: the dashboard's own state and views on a bundle of precomputed results.

It runs in the browser (Pyodide, the page ``bulk-panel share`` builds with ``panel convert``)
or under ``panel serve``: no pipeline, no server routes, no image files, no datashader; torch,
timm, umap, hdbscan and numba are never imported. What it keeps: the map as plain WebGL
points, the hover thumbnail, box and lasso selection into the table, the label chooser and
label edits (with undo), and the CSV download of the labels, made in the browser.

>>> StaticDashboard.from_bundle("bulk_panel_data").servable()   # the page's app script
>>> servable_page("bulk_panel_data")                            # the same, with pn.extension

The bundle it opens is described in :mod:`.bundle`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import panel as pn
import param

from ..state import ResultsStore
from ..views import Dashboard, source_line, text_pane
from .bundle import BUNDLE_DIR, THUMBS_FILE, BundledThumbnails, describe, read_bundle

__all__ = ["StaticDashboard", "servable_page"]


class StaticDashboard(Dashboard):
    """The dashboard as a shared page: map (plain WebGL points), hover thumbnail, box and lasso
    selection → table, label summary, label chooser and edits, CSV download, the cluster
    gallery, colouring by outlier score or confidence, "Show outliers", and, for results with
    learnt labels, how many labels a person gave and how many were predicted.

    Hidden, because a page has nothing behind them: the pipeline controls, "Save labels" (no
    results file), the Parquet download (no pyarrow in the browser) and the images zip (no
    image files). Thumbnails are inlined as ``data:`` URIs from the bundle.

    >>> StaticDashboard.from_bundle("bulk_panel_data").servable()
    """

    thumbnails_url = param.String(
        default=None, allow_None=True, doc="None: thumbnails are inlined (a static page has no route)."
    )
    rasterize_above = param.Integer(
        default=sys.maxsize, doc="Never datashade: the browser has no datashader; the bundle is capped instead."
    )
    title = param.String(default="bulk_panel · shared labels", doc="Page title.")
    tool_tabs = param.ListSelector(
        default=["gallery"], objects=["similar", "gallery", "duplicates"],
        doc="Only the cluster gallery: the page has no embeddings (more like this), no scipy (duplicates) "
            "and no hdbscan (splitting).",
    )
    note = param.String(default="", doc="What the page holds (sample, source), shown as text in the sidebar.")

    def __init__(self, **params):
        if "thumbnails" not in params:
            params["thumbnails"] = BundledThumbnails()
        super().__init__(**params)
        self.tools.save_button.visible = False
        self.downloads.parquet.visible = False
        self.downloads.zip.visible = False

    @classmethod
    def from_bundle(cls, folder: str | Path = BUNDLE_DIR, **params) -> "StaticDashboard":
        """The page on the bundle in ``folder`` (relative paths: to the working directory,
        which is where Pyodide unpacks the page's resources)."""
        folder = Path(folder)
        results = read_bundle(folder)
        params.setdefault("note", describe(results.meta) + " Label edits stay in this page: download the CSV to keep them.")
        return cls(store=ResultsStore(results=results), thumbnails=BundledThumbnails(folder / THUMBS_FILE), **params)

    async def _warm(self) -> None:
        # Pyodide has no threads; the bundle is small enough to build the lookups in place
        self.store.warm()

    def sidebar(self) -> list:
        note = text_pane(self.note, styles={"font-size": "12px"}, sizing_mode="stretch_width",
                         stylesheets=["pre { white-space: pre-wrap; overflow-wrap: anywhere; }"])
        shared = [note]
        if self.store.source_counts()["cluster"] < len(self.store.frame):  # labels by a person or predicted
            # whose labels these are (the map colours them by confidence: Explore → confidence)
            shared.append(pn.pane.Markdown(
                pn.bind(lambda frame: source_line(self.store, person="labelled by a person"), self.store.param.frame),
                styles={"font-size": "12px"}, sizing_mode="stretch_width"))
        return [*shared, *super().sidebar()]


def servable_page(folder: str | Path = BUNDLE_DIR) -> pn.Column:
    """The page's whole app script: Panel's extensions, then the served page.

    >>> servable_page()          # in index.py, next to bulk_panel_data/
    """
    pn.extension("tabulator", sizing_mode="stretch_width")
    dashboard = StaticDashboard.from_bundle(folder)
    return dashboard.servable()

