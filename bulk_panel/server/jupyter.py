"""``explore(...)``: the dashboard for results or an image folder, for Jupyter.

>>> import bulk_panel
>>> bulk_panel.explore("results.parquet")     # renders inline as the cell's output
>>> bulk_panel.explore("photos/")             # runs the pipeline first (progress in the sidebar)

Panel's notebook output loads Bokeh's and Panel's scripts and style sheets from their CDNs. On a
machine with no internet, start the notebook with ``pn.extension("tabulator", inline=True)`` (or
set ``PANEL_INLINE=1`` before Jupyter starts): they are then written into the notebook itself
(about 4 MB per loading cell), and the dashboard draws with no outside request.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from ..compute.results import Results

__all__ = ["explore"]


def explore(
    source: Union[str, Path, Results],
    *,
    output: Optional[Union[str, Path]] = None,
    rasterize_above: Optional[int] = None,  # None: the dashboard's default
    inline_thumbnails: bool = True,
    map_height: int = 560,
):
    """The :class:`~bulk_panel.views.Dashboard` of ``source``: a results file, a Results
    object, or an image folder (the pipeline runs first; ``output`` keeps its results file).

    In a notebook there is no thumbnail route, so the table inlines the thumbnails of the first
    rows of the selection (``inline_thumbnails=False`` keeps a served URL route instead). The
    notebook's user is the operator: the pipeline controls accept any folder. The map is
    ``map_height`` pixels tall (a cell has no window height to fill).

    >>> dashboard = explore("results.parquet"); dashboard.store.selection
    """
    import panel as pn

    from ..views import THUMBS_URL
    from .session import make_dashboard

    pn.extension("tabulator")
    return make_dashboard(
        source,
        output=output,
        allowed_roots=None,
        **({} if rasterize_above is None else {"rasterize_above": rasterize_above}),
        map_height=map_height,
        thumbnails_url=None if inline_thumbnails else THUMBS_URL,
    )
