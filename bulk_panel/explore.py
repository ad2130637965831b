"""``explore(...)``: the dashboard for a results file (or Results), for Jupyter.

>>> import bulk_panel.explore as bx
>>> bx.explore("results.parquet")     # renders inline as the cell's output
"""
from __future__ import annotations

from pathlib import Path
from typing import Union

from .compute.results import Results, load_results


def explore(source: Union[str, Path, Results], *, rasterize_above: int = 20_000, inline_thumbnails: bool = True):
    """The :class:`~bulk_panel.views.Dashboard` of ``source`` (a results file path or Results).

    In a notebook there is no thumbnail route, so the table inlines the thumbnails of the first
    rows of the selection (``inline_thumbnails=False`` keeps a served URL route instead).

    >>> dashboard = explore("results.parquet"); dashboard.store.selection
    """
    import panel as pn

    from .state import ResultsStore
    from .views import THUMBS_URL, Dashboard

    pn.extension("tabulator")
    results = source if isinstance(source, Results) else load_results(source)
    return Dashboard(
        store=ResultsStore(results=results),
        rasterize_above=rasterize_above,
        thumbnails_url=None if inline_thumbnails else THUMBS_URL,
    )
