"""The whole page: :class:`Dashboard`.

>>> Dashboard(store=ResultsStore.from_path("results.parquet"))     # inline in Jupyter
>>> Dashboard(store=store).page().servable()                       # served
"""
from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from typing import Optional

import panel as pn
import param

from ..compute.results import Results
from ..compute.thumbs import ShownThumbnails, ThumbnailCache
from ..state import PipelineRunner, ResultsStore
from ._thumbs import THUMBS_URL
from ._widgets import on_demand, tabs_on_demand
from .downloads import EXPORTS_URL, Downloads
from .galleries import ClusterGallery, DuplicatesView, ExploreTools, SimilarGallery
from .labels import LabelTools
from .learning import SuggestionsView
from .map import RASTERIZE_ABOVE, ScatterView
from .page import HEADER_PX, served_page
from .pipeline import PipelineControls
from .preview import HoverPreview, ImagePreview
from .shared import shared_results, shared_thumbnails
from .tables import LabelSummary, SelectionTable

__all__ = ["Dashboard"]


#: the main area's cards' margins, in pixels: the map fills the window below the header and them
MAIN_MARGIN_PX = 10


class Dashboard(pn.viewable.Viewer):
    """The whole page. The first screen: the map, and beside it the selected images' table (with
    the label summary and the tools in tabs) and the focused image; in the sidebar, labelling
    first, then exploring, downloads and the pipeline. What is not on the first screen is built
    when it is first opened.

    >>> Dashboard(store=ResultsStore.from_path("results.parquet"))           # Jupyter
    >>> Dashboard(store=store).servable()                                   # the served page
    """

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, doc="The (shared) thumbnail cache.")
    thumbnails_url = param.String(default=THUMBS_URL, allow_None=True,
                                  doc="Thumbnail route prefix; None inlines thumbnails (Jupyter).")
    rasterize_above = param.Integer(default=RASTERIZE_ABOVE, doc="Datashade the map above this many points.")
    map_height = param.Integer(default=None, allow_None=True, bounds=(200, None),
                               doc="Height of the map in pixels; None: as tall as the window allows.")
    table_rows = param.Integer(default=8, bounds=(1, None), doc="Rows per page of the selection table.")
    title = param.String(default="bulk_panel", doc="Page title.")
    runner = param.ClassSelector(class_=PipelineRunner, allow_None=True,
                                 doc="Runs the pipeline from the page (folder, settings, Run); None hides it.")
    tool_tabs = param.ListSelector(
        default=["suggest", "similar", "gallery", "duplicates"], objects=["suggest", "similar", "gallery", "duplicates"],
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
        self.scatter = ScatterView(store=store, rasterize_above=self.rasterize_above, height=self.map_height)
        self.table = SelectionTable(store=store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails,
                                    page_size=self.table_rows)
        self.tools = LabelTools(store=store)
        self.preview = ImagePreview(store=store, thumbnails=self.thumbnails)
        self.hover = HoverPreview(store=store, thumbnails=self.thumbnails)
        tabs = {"labels": ("Labels", lambda: self.summary), "suggest": ("Suggest", lambda: self.suggestions),
                "similar": ("Similar", lambda: self.similar),
                "gallery": ("Gallery", lambda: self.gallery), "duplicates": ("Duplicates", lambda: self.duplicates)}
        self._tab_of = {name: number for number, name in enumerate(["selection", "labels", *self.tool_tabs])}
        self.tabs = tabs_on_demand(("Selection", self.table), *[tabs[name] for name in ["labels", *self.tool_tabs]],
                                   sizing_mode="stretch_width")
        self.tabs.param.watch(self._show_gallery, "active")
        self.more_button = pn.widgets.Button(label="More like this", variant="outline",
                                             disabled=store.param.focus.rx.is_(None),
                                             visible="similar" in self.tool_tabs)
        self.more_button.on_click(self._more_like_this)
        self.controls = PipelineControls(runner=self.runner) if self.runner is not None else None
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.onload(self._warm)  # after the page is drawn, off the event loop

    # the views off the first screen: made when their tab or section first opens
    @functools.cached_property
    def summary(self) -> LabelSummary:
        return LabelSummary(store=self.store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails)

    @functools.cached_property
    def suggestions(self) -> SuggestionsView:
        return SuggestionsView(store=self.store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails)

    @functools.cached_property
    def downloads(self) -> Downloads:
        # the zip streams from the server's route when there is one (thumbnails_url says so)
        return Downloads(store=self.store, exports_url=EXPORTS_URL if self.thumbnails_url else None)

    @functools.cached_property
    def similar(self) -> SimilarGallery:
        return SimilarGallery(store=self.store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails)

    @functools.cached_property
    def gallery(self) -> ClusterGallery:
        # visible only while its tab is open (it sorts every row on each change)
        return ClusterGallery(store=self.store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails,
                              visible=self.tabs.active == self._tab_of.get("gallery"))

    @functools.cached_property
    def duplicates(self) -> DuplicatesView:
        return DuplicatesView(store=self.store, thumbnails_url=self.thumbnails_url, thumbnails=self.thumbnails)

    @functools.cached_property
    def explore(self) -> ExploreTools:
        return ExploreTools(store=self.store, scatter=self.scatter, split="duplicates" in self.tool_tabs)

    def open_tab(self, name: str) -> None:
        """Show the tab ``name``: selection, labels, suggest, similar, gallery or duplicates."""
        self.tabs.active = self._tab_of[name]

    def _show_gallery(self, event) -> None:
        if "gallery" in self.__dict__:
            self.gallery.visible = event.new == self._tab_of.get("gallery")

    async def _warm(self) -> None:
        await asyncio.to_thread(self.store.warm)

    async def _more_like_this(self, event=None) -> None:
        self.open_tab("similar")
        await self.similar._find()

    @classmethod
    def from_path(cls, path: str | Path, **params) -> "Dashboard":
        """A dashboard on the results file at ``path``, read once per process and file version.

        >>> pn.serve({"bulk_panel": lambda: Dashboard.from_path("results.parquet").page()})
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
        """Labelling first; exploring, downloads and the pipeline in sections that open on demand
        (the pipeline's open while there are no results yet)."""
        sections = [
            pn.pane.Markdown("### Labels", margin=(0, 10)), self.tools,
            on_demand("Explore", lambda: self.explore),
            on_demand("Download", lambda: self.downloads),
        ]
        if self.controls is not None:
            pipeline = on_demand("Pipeline", self.controls, collapsed=self.store.results is not None)
            # closed once a run's results are in: the page is for exploring them now
            self.store.param.watch(lambda event: pipeline.param.update(collapsed=event.old is None or pipeline.collapsed),
                                   "results")
            sections.append(pipeline)
        return sections

    def main(self) -> list:
        card = dict(sizing_mode="stretch_width", margin=(5, 5), collapsible=False)
        # the map's card and the column beside it are as tall as the window below the header (or
        # fit a fixed map_height); the column scrolls inside itself, the page never does
        height = f"{self.map_height + 200}px" if self.map_height else f"calc(100vh - {HEADER_PX + MAIN_MARGIN_PX}px)"
        fill = {} if self.map_height else {"sizing_mode": "stretch_both"}  # the map: the card's height
        return [
            pn.Row(
                pn.Card(self.scatter, self.hover, title=pn.bind(self._header, self.store.param.results),
                        **{**card, **fill}, styles={"height": height}),
                pn.Column(
                    self.tabs,
                    pn.Card(self.preview, self.more_button, title="Image", **card),
                    width=460, margin=0, styles={"height": height, "overflow-y": "auto"},
                ),
                sizing_mode=self._sizing,
            ),
        ]

    @property
    def _sizing(self) -> str:
        """How the main area's layouts size: to the window's height when the map fills it."""
        return "stretch_width" if self.map_height else "stretch_both"

    def page(self) -> pn.Column:
        """The served page: header, sidebar and the main area (:func:`~.page.served_page`)."""
        return served_page(self.title, main=[pn.Column(*self.main(), sizing_mode=self._sizing)],
                           sidebar=[pn.Column(*self.sidebar(), sizing_mode="stretch_width")])

    def servable(self, title: Optional[str] = None, location: bool = True, area: str = "main", target=None):
        return self.page().servable(title=title or self.title, location=location)

    def __panel__(self):
        return pn.Row(
            pn.Column(*self.sidebar(), width=320),
            pn.Column(*self.main(), sizing_mode=self._sizing),
            sizing_mode=self._sizing,
        )
