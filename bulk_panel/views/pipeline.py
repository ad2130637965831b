"""Sidebar controls that run the pipeline: folder, stage parameters, Run, progress, message.

A thin view over :class:`~bulk_panel.state.runner.PipelineRunner`. The stage widgets are generated
from the stages' parameters, exactly those the CLI exposes
(:data:`~bulk_panel.compute.stages.STAGE_PARAMETERS`).

>>> runner = PipelineRunner(folder="photos", allowed_roots=["/data"], on_results=store.load)
>>> PipelineControls(runner=runner)          # in a sidebar, or on its own in Jupyter
"""
from __future__ import annotations

import panel as pn
import param

from ..state import PipelineRunner
from ._widgets import text_pane

__all__ = ["PipelineControls", "STAGE_TITLES"]

#: card titles, by stage
STAGE_TITLES = {
    "source": "Images",
    "embedder": "Embedding model",
    "projector": "Map (UMAP)",
    "clusterer": "Clusters (HDBSCAN)",
}


def _session_dispatch():
    """A dispatch for PipelineRunner that runs callbacks on this session's event loop
    (as Panel's "manual threading" guide does), or None outside a server (Jupyter, tests)."""
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        return None
    from panel.io.state import set_curdoc

    def dispatch(callback):
        with set_curdoc(doc):
            pn.state.execute(callback, schedule=True)

    return dispatch


class PipelineControls(pn.viewable.Viewer):
    """Folder input, per-stage parameter cards, a Run button, a progress bar and a message line.

    Widgets write into the runner's and the stages' parameters; the worker thread only sets
    parameters (Panel schedules the widget updates on the session's event loop), and the
    results are handed to ``runner.on_results`` on that loop.

    >>> controls = PipelineControls(runner=PipelineRunner(on_results=store.load))
    >>> controls.run_button.clicks += 1       # same as clicking Run
    """

    runner = param.ClassSelector(class_=PipelineRunner, doc="The session's pipeline runner.")
    expanded = param.List(default=["clusterer"], doc="Stages whose parameter cards start open.")

    def __init__(self, **params):
        super().__init__(**params)
        from ..compute.stages import STAGE_PARAMETERS  # the stage classes import the compute stack

        runner = self.runner
        self.folder_input = pn.widgets.TextInput.from_param(
            runner.param.folder, name="Image folder", placeholder="folder of images on the server"
        )
        self.stage_params: dict[str, pn.Param] = {
            stage: pn.Param(getattr(runner.pipeline, stage), parameters=list(names), show_name=False)
            for stage, (_cls, names) in STAGE_PARAMETERS.items()
        }
        self.cards = [
            pn.Card(
                pane,
                title=STAGE_TITLES.get(stage, stage),
                collapsed=stage not in self.expanded,
                sizing_mode="stretch_width",
                margin=(5, 0),
            )
            for stage, pane in self.stage_params.items()
        ]
        self.run_button = pn.widgets.Button(
            name="Run", button_type="primary", disabled=runner.param.running, sizing_mode="stretch_width"
        )
        self.run_button.on_click(self.start)
        self.folder_input.param.watch(self.start, "enter_pressed")  # Enter in the folder field runs too
        self.progress_bar = pn.indicators.Progress(
            value=pn.bind(lambda p: int(round(100 * p)), runner.param.progress),
            max=100,
            sizing_mode="stretch_width",
            height=12,
        )
        # folder names in messages never become live HTML
        self.message_line = text_pane(
            runner.param.message,
            sizing_mode="stretch_width",
            stylesheets=["pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }"],
        )

    def start(self, event=None) -> None:
        self.runner.dispatch = _session_dispatch()
        self.runner.run()

    def __panel__(self):
        return pn.Column(
            self.folder_input,
            *self.cards,
            self.run_button,
            self.progress_bar,
            self.message_line,
            sizing_mode="stretch_width",
        )
