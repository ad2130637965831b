"""Building one session's page from what the operator named at launch.

>>> make_dashboard("results.parquet")            # open results
>>> make_dashboard("photos/", output="r.parquet") # run the pipeline on a folder first, then show it
>>> make_dashboard("photos/", settings={"clusterer": {"min_cluster_size": 20}})  # the page's pipeline settings
>>> session_page("results.parquet", allowed_roots=["/data"])  # served: the page, or a message

Used by ``app.py`` (``panel serve``), ``bulk-panel serve`` and ``bulk_panel.explore`` (Jupyter). The
operator's target fixes the allowed folders: a served page can run the pipeline again, with
other settings or on a subfolder, but never on a folder outside the target's own folder and
the extra roots the operator allowed (``--allow-root DIR``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import panel as pn

from ..compute.pipeline import Pipeline
from ..compute.results import Results, ResultsError, is_results_folder
from ..compute.stages import build_stages
from ..state import PipelineRunner, ResultsStore, one_line
from ..views import Dashboard, served_page, shared_results, warm_datashader
from ..views._widgets import text_pane
from .target import Target

__all__ = ["error_page", "make_dashboard", "prepare_server", "session_page"]


def make_dashboard(
    target: str | Path | Results,
    output: Optional[str | Path] = None,
    allowed_roots: Optional[Sequence[str | Path]] = (),
    cache_dir: Optional[str] = None,
    settings: Optional[Mapping[str, Mapping[str, Any]]] = None,
    incremental: bool = True,
    process: bool = True,
    **dashboard_params,
) -> Dashboard:
    """A :class:`Dashboard` on results (a file or object) or on an image folder.

    For a folder, the pipeline runs when the page loads (off the event loop, with progress)
    and its results are written to ``output`` (so "Save labels" has a file) unless output
    is None. The page may run the pipeline inside the target's own folder and inside
    ``allowed_roots`` (extra folders the operator allowed); ``None`` allows any folder
    (Jupyter, where the user is the operator). Results whose image folder is unknown, with no
    extra roots, get no pipeline controls at all. The page's pipeline starts from ``settings``
    (stage → parameter → value, as :func:`~bulk_panel.compute.stages.build_stages` takes them;
    a bad one raises ValueError), ``cache_dir`` and ``incremental``; it runs in a process of its
    own unless ``process`` is False (see :class:`~bulk_panel.state.PipelineRunner`). Raises
    :class:`ResultsError` for a results file that cannot be read.
    """
    if isinstance(target, Results):
        results, folder = target, target.image_root
    elif Path(target).is_dir() and not is_results_folder(target):
        results, folder = None, Path(target)
        if output is not None and Path(output).is_file():
            results = shared_results(output)  # an earlier session already ran it
    else:
        results = shared_results(target)
        folder = results.image_root
    roots = None if allowed_roots is None else [str(r) for r in ([folder] if folder else []) + list(allowed_roots)]
    store = ResultsStore(results=results) if results is not None else ResultsStore()

    def on_results(new: Results) -> None:
        if output is not None:
            new.save(output)
        store.load(new)

    runner = None
    if roots is None or roots:  # an empty list would mean "any folder" to the runner: no controls then
        runner = PipelineRunner(
            pipeline=Pipeline(root=str(folder) if folder else None, cache_dir=cache_dir, incremental=incremental,
                              **build_stages(settings)),
            folder=str(folder or ""),
            allowed_roots=roots,
            on_results=on_results,
            process=process,  # embedding and UMAP never stall the other sessions' selections
        )
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(lambda context: runner.close())
    dashboard = Dashboard(store=store, runner=runner, **dashboard_params)
    if results is None:
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.onload(dashboard.controls.start)
        else:
            runner.run()
    return dashboard


def error_page(message: str, headline: str = "The results could not be opened.") -> pn.viewable.Viewable:
    """A page that says, on one line and as text, why there is no dashboard."""
    return served_page("bulk_panel", main=[pn.pane.Alert(headline, alert_type="danger"),
                                           text_pane(one_line(message), styles={"white-space": "pre-wrap"})])


def session_page(target: str | Path | Results, **params) -> pn.viewable.Viewable:
    """One served session's page: the dashboard's page, or :func:`error_page` when the
    results file cannot be read (missing, corrupt, foreign); the server keeps serving.

    >>> pn.serve({"bulk_panel": lambda: session_page("results.parquet", allowed_roots=["/data"])})
    """
    try:
        return make_dashboard(target, **params).page()
    except ResultsError as exc:
        return error_page(str(exc))


def prepare_server(target: Target, first_page: bool = True) -> None:
    """What a server does once, before it listens: read a results target into the shared cache
    (the first page then does not wait for it) and, with ``first_page``, build one page on it,
    unseen, so that the imports and one-off work of a first page (HoloViews' and Panel's
    plotting, the page's layout) are done before a browser asks (about a second, at start rather
    than in the first page). datashader's kernels are compiled in a background thread only when
    the map will be datashaded (more rows than the dashboard's ``rasterize_above``): a smaller
    map never imports datashader, and the server stays about half the size. A results file
    that cannot be read is left to the page, which says why.

    >>> prepare_server(resolve_target("results.parquet"))
    """
    if target.images:
        return
    try:
        results = shared_results(target.path)
    except ResultsError:
        return
    if len(results.frame) > Dashboard.param.rasterize_above.default:
        warm_datashader()
    if first_page:
        from bokeh.document import Document
        from panel.io.state import set_curdoc

        doc = Document()
        with set_curdoc(doc):  # the page's shared models (style sheets) belong to this document only
            Dashboard(store=ResultsStore(results=results)).page().server_doc(doc)
