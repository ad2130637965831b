"""Level 1: PipelineRunner — folder checks, a real threaded run, re-clustering, errors."""
import os
import threading
from pathlib import Path

import param
import pytest

from bulk_panel.compute.results import Results
from bulk_panel.state.runner import FolderRefused, PipelineRunner, resolve_folder

from helpers import DEMO, demo_subset, small_pipeline, synthetic_results


TIMEOUT = 180



@pytest.fixture(scope="module", params=["thread", "process"])
def real_run(request, tmp_path_factory):
    """One real run (real model, UMAP, HDBSCAN) on 12 demo images, shared by the module's tests:
    in a thread of this process, and in a process of its own (as a served page runs it)."""
    root = tmp_path_factory.mktemp("runner")
    folder = demo_subset(root / "images", per_category=4)
    delivered, seen = [], []
    runner = PipelineRunner(
        pipeline=small_pipeline(root / "cache"),
        folder=str(folder),
        allowed_roots=[str(root / "images")],
        on_results=delivered.append,
        process=request.param == "process",
    )
    runner.param.watch(lambda e: seen.append((runner.stage, e.new)), "progress")
    thread = runner.run()
    assert thread is not None and runner.running
    assert runner.wait(TIMEOUT), "the run did not finish"
    yield runner, delivered, seen, folder
    runner.close()


@pytest.mark.slow
def test_real_run_reports_progress_and_delivers_results(real_run):
    runner, delivered, seen, folder = real_run
    assert runner.error == "", runner.message
    assert not runner.running
    assert runner.progress == 1.0
    values = [v for _, v in seen]
    assert values == sorted(values) and values[-1] == 1.0  # never goes backwards
    assert {"scan", "embed", "project", "cluster"} <= {s for s, _ in seen}
    assert len(delivered) == 1 and isinstance(delivered[0], Results)
    assert delivered[0] is runner.results
    frame = delivered[0].frame
    assert len(frame) == 12
    assert sorted(frame.path) == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    assert runner.message.startswith("done: 12 images")
    assert runner.pipeline.source.root == str(folder.resolve())
    assert runner.pipeline.ran_ == ["scan", "embed", "project", "cluster"]
    if runner.process:  # it ran elsewhere: the results came through a file in the cache
        assert runner._worker.pid not in (None, os.getpid()) and runner._worker._process.is_alive()
        assert list((Path(runner.pipeline.cache_dir) / "runs").glob("*.parquet"))
    else:
        assert runner.pipeline.projector.reducer_ is not None  # the real UMAP ran here


@pytest.mark.slow
def test_clusterer_only_change_reruns_only_clustering(real_run):
    runner, delivered, _, _ = real_run
    before = delivered[-1]
    runner.pipeline.clusterer.min_cluster_size = 2
    runner.pipeline.clusterer.selection_method = "leaf"
    assert runner.pipeline.stale() == ["cluster"]
    assert runner.run() is not None
    assert runner.wait(30)
    assert runner.error == "", runner.message
    assert runner.pipeline.ran_ == ["cluster"]
    assert runner.pipeline.timings_["cluster"] < 5
    assert "(ran: cluster)" in runner.message and runner.progress == 1.0
    after = delivered[-1]
    assert after is not before and len(after.frame) == 12
    assert (after.frame[["x", "y"]].to_numpy() == before.frame[["x", "y"]].to_numpy()).all()  # same map


@pytest.mark.slow
def test_rerun_with_nothing_changed_rescans_the_folder(real_run):
    runner, delivered, _, folder = real_run
    src = sorted((DEMO / "plants").glob("*.png"))[0]
    (folder / "plants").mkdir(exist_ok=True)
    (folder / "plants" / src.name).write_bytes(src.read_bytes())
    assert runner.pipeline.stale() == []
    runner.run()
    assert runner.wait(TIMEOUT)
    assert runner.error == "", runner.message
    assert len(delivered[-1].frame) == 13
    assert delivered[-1].meta["counts"]["cached"] == 12  # nothing computed was thrown away


# ---------------------------------------------------------------------------------------
# folders the user may not run on
# ---------------------------------------------------------------------------------------
@pytest.fixture
def allowed(tmp_path):
    root = tmp_path / "allowed"
    (root / "photos").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return root


def refused(runner: PipelineRunner, folder: str) -> str:
    runner.folder = folder
    root_before = runner.pipeline.source.root
    assert runner.run() is None
    assert not runner.running
    assert runner.error and runner.message == runner.error
    assert "\n" not in runner.message
    assert runner.pipeline.source.root == root_before  # nothing changed
    return runner.message


@pytest.mark.parametrize(
    "folder",
    ["/etc", "~", "~/", "../outside", "../", "photos/../../outside", "{root}/../outside", "{root}/photos/../.."],
)
def test_folders_outside_the_allowed_roots_are_refused(allowed, folder, monkeypatch):
    monkeypatch.setenv("HOME", str(allowed.parent))  # '~' exists and lies outside the root
    folder = folder.format(root=allowed)
    runner = PipelineRunner(allowed_roots=[str(allowed)])
    message = refused(runner, folder)
    assert repr(folder) in message
    assert "outside the allowed folders" in message


def test_a_symlink_out_of_the_allowed_root_is_refused(allowed):
    (allowed / "escape").symlink_to(allowed.parent / "outside", target_is_directory=True)
    (allowed / "inner").symlink_to(allowed / "photos", target_is_directory=True)
    runner = PipelineRunner(allowed_roots=[str(allowed)])
    message = refused(runner, str(allowed / "escape"))
    assert repr(str(allowed / "escape")) in message and "outside the allowed folders" in message
    assert "outside the allowed folders" in refused(runner, "escape")
    assert resolve_folder("inner", [allowed]) == (allowed / "photos").resolve()  # a link that stays inside is fine


def test_a_symlinked_root_still_contains_its_own_folders(allowed, tmp_path):
    link = tmp_path / "link-to-allowed"
    link.symlink_to(allowed, target_is_directory=True)
    assert resolve_folder(str(link / "photos"), [str(link)]) == (allowed / "photos").resolve()
    assert resolve_folder("photos", [str(link)]) == (allowed / "photos").resolve()
    assert resolve_folder(str(link), [str(link)]) == allowed.resolve()


def test_folders_inside_the_allowed_roots_are_accepted(allowed, tmp_path):
    assert resolve_folder("photos", [allowed]) == (allowed / "photos").resolve()
    assert resolve_folder(str(allowed / "photos") + "/", [allowed]) == (allowed / "photos").resolve()
    second = tmp_path / "second"
    second.mkdir()
    assert resolve_folder(str(second), [allowed, second]) == second.resolve()


def test_without_allowed_roots_any_existing_folder_is_fine(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_folder("~", None) == tmp_path.resolve()
    assert resolve_folder("/etc", []) == Path(os.path.realpath("/etc"))
    monkeypatch.chdir(tmp_path)
    assert resolve_folder(".", None) == tmp_path.resolve()


def test_existence_is_not_revealed_outside_the_roots(allowed):
    with pytest.raises(FolderRefused, match="outside the allowed folders"):
        resolve_folder("/no/such/folder", [allowed])
    with pytest.raises(FolderRefused, match="outside the allowed folders"):
        resolve_folder("/etc/passwd", [allowed])


@pytest.mark.parametrize("folder", ["", "   ", "a\x00b"])
def test_blank_or_bad_names_are_refused(folder, allowed):
    runner = PipelineRunner(allowed_roots=[str(allowed)])
    runner.folder = folder
    assert runner.run() is None and runner.error and not runner.running


def test_markup_and_newlines_in_a_folder_name_stay_on_one_quoted_line(allowed):
    runner = PipelineRunner(allowed_roots=[str(allowed)])
    message = refused(runner, "/etc/<img src=x onerror=alert(1)>\nsecond line")
    assert "\n" not in message and "\\n" in message


# ---------------------------------------------------------------------------------------
# missing or empty folders, errors, concurrency (fast: no model loaded)
# ---------------------------------------------------------------------------------------
def test_missing_folder_ends_with_a_clear_message(allowed, tmp_path):
    runner = PipelineRunner(pipeline=small_pipeline(tmp_path / "cache"), allowed_roots=[str(allowed)])
    runner.folder = "photos/missing"
    assert runner.run() is None
    assert runner.message == "folder not found: 'photos/missing'" and not runner.running


def test_empty_folder_ends_with_a_clear_message(allowed, tmp_path):
    runner = PipelineRunner(pipeline=small_pipeline(tmp_path / "cache"), folder=str(allowed / "photos"))
    assert runner.run() is not None
    assert runner.wait(60)
    assert not runner.running
    assert runner.message == f"no image files in {(allowed / 'photos').resolve()}"
    assert runner.error == runner.message and runner.results is None
    (allowed / "photos" / "notes.txt").write_text("not an image")
    runner.run()
    assert runner.wait(60) and runner.message.startswith("no image files")  # can run again


class _Source(param.Parameterized):
    root = param.String(default="")


class FakePipeline(param.Parameterized):
    """Stands in for Pipeline: blocks until released, then returns or raises."""

    source = param.ClassSelector(class_=_Source, default=_Source())

    def __init__(self, outcome=None, **params):
        super().__init__(**params)
        self.source = _Source()
        self.outcome = outcome
        self.release = threading.Event()
        self.started = threading.Event()
        self.calls = 0

    def stale(self):
        return ["scan", "embed", "project", "cluster"]

    def run(self, progress=None, refresh=False):
        self.calls += 1
        self.started.set()
        progress("scan", 0, 1)
        progress("scan", 1, 1)
        progress("embed", 3, 10)
        assert self.release.wait(30)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        self.ran_ = self.stale()
        return self.outcome


def fake_results():
    import pandas as pd

    return Results(frame=pd.DataFrame({"path": ["a.png"]}), meta={"counts": {"used": 1, "clusters": 0, "skipped": 0}})


def test_a_second_run_while_running_is_refused(tmp_path):
    fake = FakePipeline(outcome=fake_results())
    got = []
    runner = PipelineRunner(pipeline=fake, folder=str(tmp_path), on_results=got.append)
    assert runner.run() is not None
    assert fake.started.wait(10)
    assert runner.running and runner.stage == "embed"
    assert 0 < runner.progress < 1 and runner.message == "embedding images 3/10"
    assert runner.run() is None
    assert runner.message.startswith("already running")
    assert runner.running
    fake.release.set()
    assert runner.wait(10)
    assert fake.calls == 1 and len(got) == 1 and runner.progress == 1.0 and runner.error == ""


def test_an_unexpected_error_ends_up_in_the_message_and_the_runner_recovers(tmp_path):
    fake = FakePipeline(outcome=ZeroDivisionError("boom\nsecond line"))
    fake.release.set()
    runner = PipelineRunner(pipeline=fake, folder=str(tmp_path))
    runner.run()
    assert runner.wait(10)
    assert runner.message == "run failed: ZeroDivisionError: boom second line"
    assert runner.error == runner.message and not runner.running
    fake.outcome = fake_results()
    runner.run()
    assert runner.wait(10) and runner.error == "" and runner.results is fake.outcome


def test_a_failing_results_callback_is_reported(tmp_path):
    fake = FakePipeline(outcome=fake_results())
    fake.release.set()

    def broken(results):
        raise ValueError("no room")

    runner = PipelineRunner(pipeline=fake, folder=str(tmp_path), on_results=broken)
    runner.run()
    assert runner.wait(10)
    assert "could not be shown: no room" in runner.message and not runner.running
    assert runner.results is fake.outcome  # kept for a retry


def test_results_are_delivered_through_dispatch(tmp_path):
    fake = FakePipeline(outcome=fake_results())
    fake.release.set()
    queued, got = [], []
    runner = PipelineRunner(pipeline=fake, folder=str(tmp_path), on_results=got.append, dispatch=queued.append)
    runner.run()
    assert not runner.wait(0.5)  # still running until the session's loop delivers
    assert len(queued) == 1 and got == [] and runner.running
    queued[0]()
    assert got == [fake.outcome] and not runner.running and runner.message.startswith("done: 1 images")


# ---------------------------------------------------------------------------------------
# what the operator allowed at launch reaches the page's runner (bulk-panel serve, app.py)
# ---------------------------------------------------------------------------------------
@pytest.fixture
def launched(allowed, tmp_path, monkeypatch):
    """Results of images in ``allowed/photos``, saved; an extra root; HOME outside both."""

    monkeypatch.setenv("HOME", str(tmp_path))
    extra = tmp_path / "extra"
    (extra / "more").mkdir(parents=True)
    (allowed / "photos" / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)
    path = synthetic_results(20, image_root=allowed / "photos").save(tmp_path / "results.parquet")
    return path, allowed / "photos", extra


@pytest.mark.parametrize("folder", ["/etc", "~", "../", "escape", "{photos}/escape", "{extra}/.."])
def test_a_served_page_runs_only_in_the_results_folder_and_the_allowed_roots(launched, folder):
    from bulk_panel.server.session import make_dashboard

    path, photos, extra = launched
    dashboard = make_dashboard(path, allowed_roots=[extra])
    runner = dashboard.runner
    assert runner.allowed_roots == [str(photos), str(extra)]
    assert runner.folder == str(photos)
    folder = folder.format(photos=photos, extra=extra)
    message = refused(runner, folder)
    assert message == runner.error and repr(folder) in message and "outside the allowed folders" in message


def test_an_allowed_extra_root_is_accepted(launched):

    from bulk_panel.server.session import make_dashboard

    path, photos, extra = launched
    for folder, extra_roots, real in ((str(extra / "more"), [extra], extra / "more"), (".", (), photos)):
        dashboard = make_dashboard(path, allowed_roots=extra_roots)
        runner = dashboard.runner
        assert runner.process  # a served page runs its pipeline in a process of its own...
        runner.pipeline = fake = FakePipeline(outcome=synthetic_results(7))
        runner.process = False  # ...and this fake one here
        fake.release.set()
        runner.folder = folder
        assert runner.run() is not None, runner.message
        assert runner.wait(10) and runner.error == "", runner.message
        assert fake.source.root == str(real.resolve())
        assert len(dashboard.store.frame) == 7  # the page shows the new run


def test_results_with_no_known_folder_get_no_run_controls_unless_a_root_is_allowed(tmp_path):

    from bulk_panel.server.session import make_dashboard

    results = synthetic_results(20)  # no image_root in its meta
    assert make_dashboard(results).runner is None  # never "any folder" by accident
    assert make_dashboard(results, allowed_roots=[tmp_path]).runner.allowed_roots == [str(tmp_path)]
    assert make_dashboard(results, allowed_roots=None).runner.allowed_roots is None  # Jupyter: any folder


def test_allow_root_flags_are_checked_and_parsed(tmp_path):
    from bulk_panel.cli import make_parser
    from bulk_panel.server.target import allowed_roots, app_args

    args = make_parser().parse_args(["serve", "r.parquet", "--allow-root", str(tmp_path), "--allow-root", "~"])
    assert args.allow_root == [str(tmp_path), "~"]
    assert make_parser().parse_args(["serve"]).allow_root == []
    assert allowed_roots([str(tmp_path)]) == [tmp_path.resolve()]
    with pytest.raises(ValueError, match=r"^--allow-root '/no/such/dir': not a folder$"):
        allowed_roots(["/no/such/dir"])
    app = app_args(["photos", "out.parquet", "--allow-root", "/data", "--allow-root", "/more"])
    assert (app.target, app.output, app.allow_root) == ("photos", "out.parquet", ["/data", "/more"])
    assert app_args([]).target is None


def test_serve_with_a_missing_allow_root_is_a_usage_error(tmp_path):
    import subprocess
    import sys


    path = synthetic_results(5, image_root=tmp_path).save(tmp_path / "r.parquet")
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "serve", str(path), "--allow-root", "/no/such/dir"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--allow-root '/no/such/dir': not a folder" in out.stderr


@pytest.mark.slow
def test_the_pipeline_process_says_why_it_refuses_recovers_from_a_kill_and_stops_when_idle(tmp_path):
    """A served session's pipeline process: a refusal comes back as the pipeline's own one line;
    a process killed between runs is replaced by the next run; an idle one stops by itself."""
    import signal

    from bulk_panel.compute.pipeline import PipelineError
    from bulk_panel.state.process import PipelineProcess

    worker = PipelineProcess(keep_s=None)
    pipeline = small_pipeline(tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    pipeline.source.root = str(tmp_path / "empty")
    with pytest.raises(PipelineError, match="no image files in"):
        worker.run(pipeline, refresh=False, progress=lambda *a: None)
    first = worker.pid
    os.kill(first, signal.SIGKILL)
    worker._process.join(10)
    pipeline.source.root = str(demo_subset(tmp_path / "images", per_category=2))
    stages = []
    results = worker.run(pipeline, refresh=False, progress=lambda stage, done, total: stages.append(stage))
    assert worker.pid not in (None, first) and len(results.frame) == 6
    assert {"scan", "embed", "project", "cluster"} <= set(stages) and pipeline.stale() == []
    worker.keep_s = 0.5
    pipeline.clusterer.min_cluster_size = 2
    assert len(worker.run(pipeline, refresh=False, progress=lambda *a: None).frame) == 6
    assert pipeline.ran_ == ["cluster"]  # the same process, its map kept
    process, timer = worker._process, worker._idle
    timer.join(30)  # the idle stop joins the process; a second join here could race it for the exit status
    assert not timer.is_alive() and worker.pid is None and not process.is_alive()  # stopped once idle


def test_an_idle_timer_that_fires_as_a_run_ends_still_stops_the_process(monkeypatch):
    """The idle stop waits for a run that is still ending (it holds the lock) instead of giving up."""
    import time

    from bulk_panel.state.process import PipelineProcess

    worker = PipelineProcess(keep_s=0.05)
    closed = threading.Event()
    monkeypatch.setattr(worker, "_started", lambda: None)
    monkeypatch.setattr(worker, "_run", lambda conn, pipeline, refresh, progress: "results")
    monkeypatch.setattr(worker, "close", closed.set)
    worker._process = object()  # a process is held
    assert worker.run(None, refresh=False, progress=None) == "results"
    with worker._lock:  # the run's end, slowed: the timer fires meanwhile
        time.sleep(0.3)
        assert not closed.is_set()
    assert closed.wait(5)
