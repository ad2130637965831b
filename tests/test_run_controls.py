"""Level 2: PipelineControls without a browser — generated widgets, Run, progress, messages."""
import html

import panel as pn
import pytest

from bulk_panel.compute.stages import STAGE_PARAMETERS as STAGE_FLAGS
from bulk_panel.compute.pipeline import Pipeline
from bulk_panel.views.pipeline import PipelineControls
from bulk_panel.state.runner import PipelineRunner
from bulk_panel.state import ResultsStore

from helpers import demo_subset, wait_until



@pytest.fixture
def controls(tmp_path):
    pipeline = Pipeline(cache_dir=str(tmp_path / "cache"))
    pipeline.embedder.workers = 0
    runner = PipelineRunner(pipeline=pipeline, allowed_roots=[str(tmp_path / "root")])
    (tmp_path / "root").mkdir()
    return PipelineControls(runner=runner)


def test_stage_widgets_are_exactly_the_cli_parameters(controls):
    assert list(controls.stage_params) == list(STAGE_FLAGS)
    for stage, (cls, names) in STAGE_FLAGS.items():
        pane = controls.stage_params[stage]
        assert pane.object is getattr(controls.runner.pipeline, stage)
        widgets = [w for w in pane.layout if isinstance(w, pn.widgets.Widget)]
        assert sorted(w.name for w in widgets) == sorted(cls.param[n].label for n in names), stage
    layout = controls.__panel__()
    cards = [c for c in layout if isinstance(c, pn.Card)]
    assert len(cards) == len(STAGE_FLAGS)


def test_widgets_write_into_the_stage_parameters(controls):
    pipeline = controls.runner.pipeline
    pane = controls.stage_params["clusterer"]
    widget = next(w for w in pane.layout if w.name == Pipeline().clusterer.param["min_cluster_size"].label)
    widget.value = 7
    assert pipeline.clusterer.min_cluster_size == 7
    assert pipeline.stale()[-1] == "cluster"
    controls.folder_input.value = "photos"
    assert controls.runner.folder == "photos"


def test_a_refused_folder_shows_the_message_escaped(controls):
    controls.folder_input.value = "/etc/<img src=x onerror=alert(1)>"
    controls.run_button.clicks += 1
    assert not controls.runner.running and not controls.run_button.disabled
    assert "outside the allowed folders" in controls.message_line.object
    controls.runner.folder = "/root"
    controls.folder_input.param.trigger("enter_pressed")  # Enter in the folder field runs too
    assert "'/root'" in controls.message_line.object
    controls.runner.folder = "/etc/<img src=x onerror=alert(1)>"
    controls.run_button.clicks += 1
    model = controls.message_line.get_root()
    # the browser decodes the model's text once, then sets it as HTML: it must still be escaped
    shown = html.unescape(model.text)
    assert "<img" not in shown and "&lt;img" in shown


@pytest.mark.slow
def test_clicking_run_runs_the_pipeline_and_updates_progress(controls, tmp_path):
    demo_subset(tmp_path / "root" / "tiny", categories=("animals", "food"), per_category=2)
    runner = controls.runner
    got = []
    runner.on_results = got.append
    controls.folder_input.value = "tiny"
    assert controls.progress_bar.value == 0
    controls.run_button.clicks += 1
    assert runner.running and controls.run_button.disabled  # the button follows the runner
    assert wait_until(lambda: not runner.running, timeout=180), runner.message
    assert runner.error == "", runner.message
    assert controls.progress_bar.value == 100
    assert not controls.run_button.disabled
    assert controls.message_line.object.startswith("done: 4 images")
    assert len(got) == 1 and len(got[0].frame) == 4


@pytest.mark.slow
def test_a_run_loads_its_results_into_the_store(controls, tmp_path):
    demo_subset(tmp_path / "root" / "tiny", categories=("animals",), per_category=3)
    store = ResultsStore()
    controls.runner.on_results = store.load
    controls.folder_input.value = "tiny"
    controls.run_button.clicks += 1
    assert wait_until(lambda: not controls.runner.running, timeout=180), controls.runner.message
    assert controls.runner.error == "", controls.runner.message
    assert len(store.frame) == 3
