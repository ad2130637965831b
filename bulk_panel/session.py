"""Building one session's dashboard from what the operator named at launch.

>>> make_dashboard("results.parquet")            # open results
>>> make_dashboard("photos/", output="r.parquet") # run the pipeline on a folder first, then show it

Used by ``app.py`` (``panel serve``), ``bulk-panel serve`` and ``bulk_panel.explore`` (Jupyter). The
operator's target fixes the allowed folders: a served page can run the pipeline again, with
other settings or on a subfolder, but never on a folder outside them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import panel as pn

from .compute.pipeline import Pipeline
from .compute.results import Results
from .runner import PipelineRunner
from .state import ResultsStore
from .views import Dashboard, shared_results


def make_dashboard(
    target: str | Path | Results,
    output: Optional[str | Path] = None,
    allowed_roots: Optional[Sequence[str | Path]] = (),
    cache_dir: Optional[str] = None,
    **dashboard_params,
) -> Dashboard:
    """A :class:`Dashboard` on results (a file or object) or on an image folder.

    For a folder, the pipeline runs when the page loads (off the event loop, with progress)
    and its results are written to ``output`` (so "Save labels" has a file) unless output
    is None. ``allowed_roots=()`` means "the target's own folder"; None allows any folder
    (Jupyter, where the user is the operator).
    """
    if isinstance(target, Results):
        results, folder = target, target.image_root
    elif Path(target).is_dir():
        results, folder = None, Path(target)
        if output is not None and Path(output).is_file():
            results = shared_results(output)  # an earlier session already ran it
    else:
        results = shared_results(target)
        folder = results.image_root
    if allowed_roots == () and folder is not None:
        allowed_roots = [str(folder)]
    store = ResultsStore(results=results) if results is not None else ResultsStore()

    def on_results(new: Results) -> None:
        if output is not None:
            new.save(output)
        store.load(new)

    runner = PipelineRunner(
        pipeline=Pipeline(root=str(folder) if folder else None, cache_dir=cache_dir),
        folder=str(folder or ""),
        allowed_roots=list(allowed_roots) if allowed_roots else [],
        on_results=on_results,
    )
    dashboard = Dashboard(store=store, runner=runner, **dashboard_params)
    if results is None:
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.onload(dashboard.controls.start)
        else:
            runner.run()
    return dashboard
