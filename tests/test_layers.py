"""The tree's layers: import-linter's contracts hold, heavy packages stay lazy, the served target
is resolved one way, ``bulk-panel serve`` honours the pipeline flags it accepts, and the
benchmarks stay out of the package."""
import os
import runpy
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import panel as pn
import pytest

import bulk_panel
from bulk_panel import cli

from helpers import synthetic_results

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict:
    """This checkout's bulk_panel first, whatever an editable install points at."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_lint_imports_keeps_every_contract():
    """``lint-imports`` (the contracts in pyproject.toml: layers, no UI in compute, no cycles)
    passes from the repository root."""
    pytest.importorskip("importlinter")
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if command is None:
        pytest.skip("import-linter's lint-imports is not on PATH")
    done = subprocess.run([command, "--no-cache"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


def test_views_and_the_command_line_import_no_heavy_packages():
    """``import bulk_panel.views`` brings no torch, timm, umap or numba; ``bulk_panel.cli`` not
    even Panel (``bulk-panel --help`` stays quick)."""
    code = (
        "import sys, json, bulk_panel.cli; light = set(sys.modules);"
        "import bulk_panel.views;"
        "heavy = ('torch', 'timm', 'umap', 'numba', 'panel', 'holoviews', 'bokeh');"
        "print(json.dumps({'cli': [m for m in heavy if m in light], 'views': [m for m in heavy[:4] if m in sys.modules]}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == '{"cli": [], "views": []}'


@pytest.fixture
def served(monkeypatch, tmp_path):
    """Run ``bulk-panel serve`` (its ``main``) without a server: ``pn.serve`` is recorded, the
    page is built once, and what ``make_dashboard`` was asked for is returned."""
    from bulk_panel.server import session

    asked, made = [], []
    real = session.make_dashboard

    def make_dashboard(target, **params):
        asked.append((target, params))
        made.append(real(target, **params))
        return made[-1]

    class Server:
        port = 5006
        io_loop = type("Loop", (), {"start": lambda self: None})()

        def start(self):
            pass

    def serve(apps, **kwargs):
        apps["bulk_panel"]()  # one session's page
        return Server()

    monkeypatch.setattr(session, "make_dashboard", make_dashboard)
    monkeypatch.setattr(pn, "serve", serve)
    monkeypatch.chdir(tmp_path)

    def run(*argv):
        assert cli.main(["serve", *map(str, argv)]) == 0
        return asked[-1], made[-1]

    return run


def _results_file(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    path = tmp_path / "r.parquet"
    synthetic_results(40, image_root=images).save(path)
    return path


def test_serve_passes_its_pipeline_flags_to_the_pages_pipeline(served, tmp_path):
    results = _results_file(tmp_path)
    (target, params), dashboard = served(results, "--min-cluster-size", "7", "--model", "resnet18", "--umap-neighbors",
                                         "9", "--no-recursive", "--refit", "--cache-dir", tmp_path / "cache")
    assert target == results.resolve()
    pipeline = dashboard.runner.pipeline
    assert pipeline.clusterer.min_cluster_size == 7 and pipeline.embedder.model == "resnet18"
    assert pipeline.projector.n_neighbors == 9 and pipeline.source.recursive is False
    assert pipeline.incremental is False and pipeline.cache_dir == str(tmp_path / "cache")
    # flags left out keep the stages' defaults
    (_, _), plain = served(results)
    assert plain.runner.pipeline.clusterer.min_cluster_size is None and plain.runner.pipeline.incremental


@pytest.mark.parametrize("flags", [["--csv", "x.csv"], ["--rows-per-part", "10"], ["--seed-csv"]])
def test_serve_refuses_the_output_flags_of_run(flags, capsys):
    """Where its results go is ``-o``; the CSV and parts formats belong to ``bulk-panel run``."""
    with pytest.raises(SystemExit) as exit_:
        cli.make_parser().parse_args(["serve", "r.parquet", *flags])
    assert exit_.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_serve_refuses_a_bad_stage_value_at_launch(served, tmp_path, capsys):
    results = _results_file(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        served(results, "--min-cluster-size", "1")
    assert exit_.value.code == 2 and "min_cluster_size" in capsys.readouterr().err


def test_app_and_serve_resolve_a_folder_target_the_same_way(served, tmp_path, monkeypatch):
    """``panel serve app.py --args FOLDER`` and ``bulk-panel serve FOLDER``: the same folder,
    the same results file (``<folder name>-results.parquet`` in the working folder)."""
    from bulk_panel.server import session

    folder = tmp_path / "holiday photos"
    folder.mkdir()
    monkeypatch.setattr(session.PipelineRunner, "run", lambda self, refresh=False: None)  # no pipeline run here
    (target, params), _ = served(folder)
    pages = []
    monkeypatch.setattr(session, "session_page", lambda target, **params: pages.append((target, params)) or pn.Column())
    monkeypatch.setattr(sys, "argv", ["app.py", str(folder)])
    runpy.run_path(str(REPO / "app.py"))
    app_target, app_params = pages[-1]
    assert app_target == target == folder.resolve()
    assert app_params["output"] == params["output"] == tmp_path / "holiday photos-results.parquet"


def test_the_package_holds_no_benchmarks_and_the_shared_wheel_packs_none(tmp_path):
    from bulk_panel.share import write_wheel

    package = Path(bulk_panel.__file__).resolve().parent
    assert not [p for p in package.rglob("*.py") if "bench" in p.name]
    assert (REPO / "benchmarks" / "bench.py").is_file()
    with zipfile.ZipFile(write_wheel(tmp_path)) as zf:
        names = zf.namelist()
    assert "bulk_panel/share/app.py" in names and not [n for n in names if "bench" in n]
