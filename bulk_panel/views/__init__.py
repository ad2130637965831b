"""The views layer: thin Panel views of a :class:`~bulk_panel.state.ResultsStore` that read it
and write the user's intent back. One module per view family:

- :mod:`.map`: the map (:class:`ScatterView`), datashaded above a size (:mod:`._shading`);
- :mod:`.tables`: the selected rows and the per-label summary;
- :mod:`.labels`: the label chooser and edits; :mod:`.learning`: the Suggest tab (labels learnt
  from the person's, reviewed a page at a time);
- :mod:`.downloads`: CSV, Parquet and the images zip;
- :mod:`.galleries`: more like this, the cluster gallery, duplicates, outliers and splitting;
- :mod:`.preview`: the hovered and the focused image;
- :mod:`.pipeline`: the controls that run the pipeline from the page;
- :mod:`.dashboard`: the whole page; :mod:`.page`: the header and sidebar around it when served;
- :mod:`.shared`: what every session of a process shares (thumbnails, export tokens, results).

>>> store = ResultsStore.from_path("results.parquet")
>>> Dashboard(store=store).page().servable()       # served (see bulk_panel.server)
>>> Dashboard(store=store)                         # inline in Jupyter

The thumbnail and zip routes the served views point at live in :mod:`bulk_panel.server`.
"""
from ..compute.thumbs import ShownThumbnails
from ._thumbs import THUMBS_URL, figures_html, shown_hashes, thumb_cells, thumb_sources
from ._widgets import text_pane
from .dashboard import Dashboard
from .downloads import EXPORTS_URL, Downloads
from .galleries import ClusterGallery, DuplicatesView, ExploreTools, SimilarGallery
from .labels import LabelTools
from .learning import SuggestionsView, source_line
from .map import ScatterView, warm_datashader
from .page import served_page
from .pipeline import PipelineControls
from .preview import HoverPreview, ImagePreview
from .shared import shared_exports, shared_results, shared_thumbnails
from .tables import LabelSummary, SelectionTable

__all__ = [
    "ClusterGallery", "Dashboard", "Downloads", "DuplicatesView", "EXPORTS_URL", "ExploreTools", "HoverPreview",
    "ImagePreview", "LabelSummary", "LabelTools", "PipelineControls", "ScatterView",
    "SelectionTable", "ShownThumbnails", "SimilarGallery", "SuggestionsView", "THUMBS_URL", "figures_html", "served_page",
    "shared_exports", "shared_results", "source_line", "shared_thumbnails", "shown_hashes", "text_pane", "thumb_cells",
    "thumb_sources", "warm_datashader",
]
