"""`bulk-panel share`: the static page's app without the heavy packages, the panel convert build,
and the app served by `panel serve` in Chromium."""
import gzip
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bulk_panel.share import prepare_sources, write_bundle, write_wheel
from bulk_panel.share import BUNDLE_DIR, describe, read_bundle

from helpers import (
    ARGS, CHROMIUM, HOSTILE_LABEL, HOSTILE_NAME, answers, free_port, interrupt, real_results, synthetic_results, wait_for_plot, wait_until,
    label_summary, open_section, selection_table,
)

REPO = Path(__file__).resolve().parent.parent
HEAVY = ["torch", "torchvision", "timm", "umap", "hdbscan", "fast_hdbscan", "numba", "datashader", "docarray",
         "pynndescent", "sklearn", "dask"]
# not in the page's Pyodide environment either: the page must work without them
ABSENT_IN_PAGE = ["pyarrow", "scipy", "sqlite3"]

# Importing a blocked module raises ImportError (its loader refuses); a mere probe
# (importlib.util.find_spec, as HoloViews does for dask) finds a spec but loads nothing.
BLOCKER = """
import importlib.abc, importlib.machinery, sys
BLOCKED = set({blocked!r})
TRIED = []
class _Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        TRIED.append(spec.name)
        raise ImportError(f"{{spec.name}} is blocked in this test")
    def exec_module(self, module):
        raise ImportError(module.__name__)
class _Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, _Refuse())
        return None
sys.meta_path.insert(0, _Blocker())
"""


def run_blocked(code: str, cwd: Path, first_on_path=None) -> dict:
    """Run ``code`` in a fresh Python where importing any HEAVY or ABSENT_IN_PAGE module raises
    ImportError; ``code`` sets ``out`` (a dict), returned with the names it tried to import."""
    prelude = BLOCKER.format(blocked=HEAVY + ABSENT_IN_PAGE)
    if first_on_path is not None:
        prelude += f"sys.path.insert(0, {str(first_on_path)!r})\n"
    script = prelude + textwrap.dedent(code) + (
        "\nimport json\nout['tried'] = sorted(set(TRIED))\n"
        "out['loaded'] = sorted(m for m in sys.modules if m.split('.')[0] in BLOCKED)\n"
        "print('RESULT ' + json.dumps(out, default=str))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


# what the page does, in Python: select on the map, read the table, relabel, download the CSV
EXERCISE = """
import io
import panel as pn
import pandas as pd
from bulk_panel.share.app import StaticDashboard
import bulk_panel

dash = StaticDashboard.from_bundle({folder!r})
root = pn.panel(dash).get_root()  # builds every view, the map included
figure = dash.scatter.plot()
import holoviews as hv
plot = hv.renderer("bokeh").get_plot(figure)
store = dash.store
dash.scatter.bounds.event(bounds=(-0.5, -0.5, 1.5, 1.5))  # the box select's stream
table = dash.table.table.value
store.hover = int(table.index[0])
jpeg = dash.hover._jpeg(store.hover)
dash.tools.new_label = "felines"
dash.tools.relabel_button.clicks += 1
csv = pd.read_csv(dash.downloads.csv.callback(), keep_default_na=False)
summary = dash.summary.table.value
dash.open_tab("gallery")  # the cluster gallery, from the bundle's thumbnails
gallery = dash.gallery._html(store.frame, 4)
store.select_outliers(share=0.5)
dash.scatter.color_by = "outlier score"
hv.renderer("bokeh").get_plot(dash.scatter.plot())
out = dict(
    tabs=list(dash.tabs._names), gallery_images=gallery.count('<img src="data:image/jpeg;base64,'),
    split=dash.explore.split, more=dash.more_button.visible, outliers=len(store.selection),
    module=bulk_panel.__file__,
    rows=table.index.tolist(), names=table["name"].tolist(), thumbs=[t[:23] for t in table["thumb"]],
    csv_paths=csv["path"].tolist(), csv_labels=csv["label"].tolist(),
    labels=store.frame["label"].tolist(), summary=summary["label"].tolist(),
    hover_jpeg=jpeg is not None and jpeg[:2] == b"\\xff\\xd8",
    backend=plot.state.output_backend, rasterized=dash.scatter.rasterized,
    visible={{"save": dash.tools.save_button.visible, "parquet": dash.downloads.parquet.visible,
              "zip": dash.downloads.zip.visible, "csv": dash.downloads.csv.visible}},
    controls=dash.controls is None, note=dash.note,
)
"""


@pytest.fixture
def shared_results(tmp_path):
    """Six real images (two with a hostile name and label) as results, and their bundle."""
    results = real_results(tmp_path / "images")
    meta = write_bundle(results, tmp_path / "page" / BUNDLE_DIR, cache_dir=tmp_path / "cache", source="six.parquet")
    return results, tmp_path / "page", meta


def test_static_app_works_without_heavy_packages(shared_results):
    results, page, meta = shared_results
    assert meta["rows_shown"] == meta["rows_total"] == 6 and meta["thumbnails"] == 6
    out = run_blocked(EXERCISE.format(folder=BUNDLE_DIR), cwd=page)
    assert out["loaded"] == [] and not any(name.split(".")[0] in HEAVY for name in out["tried"]), out["tried"]
    # the box (-0.5, -0.5)–(1.5, 1.5) holds the four cats
    assert out["rows"] == [0, 1, 2, 3] and out["names"] == ["a.png", "b.png", "c.png", "d.png"]
    assert all(t == "data:image/jpeg;base64," for t in out["thumbs"])  # inlined from the bundle
    assert out["hover_jpeg"] is True
    # the tools the page can run without scipy, hdbscan or embeddings: the cluster gallery, outliers
    assert out["tabs"] == ["Selection", "Labels", "Gallery"] and out["gallery_images"] == 6
    assert out["split"] is False and out["more"] is False and out["outliers"] >= 3
    assert out["labels"] == ["felines"] * 4 + [HOSTILE_LABEL] * 2
    assert out["csv_paths"] == results.frame.path.iloc[:4].tolist() and out["csv_labels"] == ["felines"] * 4
    assert sorted(out["summary"]) == sorted(["felines", HOSTILE_LABEL])
    assert out["backend"] == "webgl" and out["rasterized"] is False and out["controls"] is True
    assert out["visible"] == {"save": False, "parquet": False, "zip": False, "csv": True}
    assert out["note"].startswith("All 6 images in six.parquet.")


def test_bundle_round_trips_text_and_samples_above_the_cap(tmp_path):
    results = synthetic_results(3_000, seed=4)
    frame = results.frame.copy()
    frame.loc[0, "label"], frame.loc[1, "label"], frame.loc[2, "path"] = "NA", "12", 'x,"y"\n.png'
    results.frame = frame
    whole = write_bundle(results, tmp_path / "all", max_points=5_000, thumb_size=0)
    back = read_bundle(tmp_path / "all").frame
    pd.testing.assert_frame_equal(back, frame)  # dtypes, float32 positions and odd text all kept
    assert whole["thumbnails"] == 0 and whole["sample_seed"] is None
    meta = write_bundle(results, tmp_path / "sample", max_points=1_000, seed=7, thumb_size=0)
    again = write_bundle(results, tmp_path / "again", max_points=1_000, seed=7, thumb_size=0)
    sample = read_bundle(tmp_path / "sample").frame
    assert (meta["rows_shown"], meta["rows_total"], meta["sample_seed"]) == (1_000, 3_000, 7)
    assert describe(meta).startswith("A random sample of 1,000 of the 3,000 images in results (seed 7)")
    assert sample.path.is_unique and set(sample.path) <= set(frame.path)
    assert (tmp_path / "sample" / "points.csv.gz").read_bytes() == (tmp_path / "again" / "points.csv.gz").read_bytes()
    assert again == meta
    rows = frame.set_index("path").loc[sample.path]
    assert np.array_equal(rows.x.to_numpy(), sample.x.to_numpy())  # a subset of rows, not a resample of points
    # only relative paths travel, never the image folder
    assert "image_root" not in json.dumps(meta)


def test_wheel_holds_the_package_and_no_dependencies(tmp_path):
    wheel = write_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read("bulk_panel-0.1.0.dist-info/METADATA").decode()
    assert {"bulk_panel/share/app.py", "bulk_panel/views/__init__.py", "bulk_panel/state/__init__.py",
            "bulk_panel/compute/results/__init__.py", "bulk_panel/compute/results/format.py",
            "bulk_panel/compute/results/parts.py", "bulk_panel/compute/results/frame.py",
            "bulk_panel/compute/results/load.py", "bulk_panel/compute/images/__init__.py",
            "bulk_panel/compute/images/decode.py", "bulk_panel/compute/images/scan.py"} <= set(names)
    assert "Requires-Dist" not in metadata  # micropip must not try to fetch torch


@pytest.mark.slow  # the whole `bulk-panel share` build in a subprocess
def test_share_command_builds_the_page_offline(tmp_path):
    results = real_results(tmp_path / "images")
    results.save(tmp_path / "six.parquet")
    site = tmp_path / "site"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BULK_PANEL_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "bulk_panel", "share", str(tmp_path / "six.parquet"), "-o", str(site)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All 6 images in six.parquet." in done.stdout and "thumbnails       6 (96 px)" in done.stdout
    html = (site / "index.html").read_text()
    worker = (site / "index.js").read_text()
    assert 'new Worker("./index.js")' in html
    # the pre-rendered map holds the file names, escaped
    assert HOSTILE_NAME not in html and HOSTILE_NAME.replace("<", "&lt;").replace(">", "&gt;") in html
    assert "cdn.jsdelivr.net/pyodide/" in worker and "'index.resources.zip'" in worker
    assert "'emfs:packed_wheels/bulk_panel-0.1.0-py3-none-any.whl'" in worker and "'sqlite3'" not in worker
    assert "pyarrow" not in worker and "torch" not in worker and "datashader" not in worker
    assert "servable_page()" in worker  # the app script itself
    with zipfile.ZipFile(site / "index.resources.zip") as zf:
        assert set(zf.namelist()) == {
            "packed_wheels/bulk_panel-0.1.0-py3-none-any.whl", f"{BUNDLE_DIR}/points.csv.gz",
            f"{BUNDLE_DIR}/meta.json", f"{BUNDLE_DIR}/thumbnails.zip",
        }
        zf.extractall(tmp_path / "unpacked")  # what Pyodide unpacks into its working directory
    points = pd.read_csv(gzip.open(tmp_path / "unpacked" / BUNDLE_DIR / "points.csv.gz"), keep_default_na=False)
    assert points.path.tolist() == results.frame.path.tolist() and points.label.tolist() == results.frame.label.tolist()
    # the page's Python: bulk_panel from the packed wheel alone, the bundle where Pyodide puts it
    wheel = tmp_path / "unpacked" / "packed_wheels" / "bulk_panel-0.1.0-py3-none-any.whl"
    out = run_blocked(EXERCISE.format(folder=BUNDLE_DIR), cwd=tmp_path / "unpacked", first_on_path=wheel)
    assert out["module"].startswith(str(wheel))
    assert out["rows"] == [0, 1, 2, 3] and out["csv_labels"] == ["felines"] * 4 and out["hover_jpeg"] is True


def test_share_reports_a_bad_results_file(tmp_path):
    from bulk_panel.cli import main

    (tmp_path / "junk.parquet").write_text("not parquet")
    assert main(["share", str(tmp_path / "junk.parquet"), "-o", str(tmp_path / "site")]) == 1
    assert not (tmp_path / "site" / "index.html").exists()


@pytest.mark.ui
def test_served_static_app_select_relabel_download(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    results = synthetic_results(400, clusters=4, seed=5)
    script, _ = prepare_sources(results, tmp_path / "src", thumb_size=0, source="blobs.parquet")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "panel", "serve", script.name, "--address", "127.0.0.1", "--port", str(port),
         "--allow-websocket-origin", f"127.0.0.1:{port}"],
        cwd=script.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            url = f"http://127.0.0.1:{port}/{script.stem}"
            assert wait_until(lambda: server.poll() is not None or answers(url), timeout=90), "panel serve did not answer"
            page.goto(url)
            page.wait_for_selector(".tabulator", timeout=60_000)
            page.wait_for_selector("canvas", timeout=60_000)
            wait_for_plot(page)  # laid out where it stays, before the drag
            page.get_by_text("All 400 images in blobs.parquet.", exact=False).wait_for(timeout=10_000)
            assert page.get_by_role("button", name="Save labels").count() == 0
            canvas = page.locator("canvas").first.bounding_box()
            page.mouse.move(canvas["x"] + canvas["width"] * 0.2, canvas["y"] + canvas["height"] * 0.2)
            page.mouse.down()
            page.mouse.move(canvas["x"] + canvas["width"] * 0.8, canvas["y"] + canvas["height"] * 0.8, steps=10)
            page.mouse.up()
            counter = page.get_by_text("of 400 images selected")
            assert wait_until(lambda: not counter.inner_text().startswith("0 of")), "the box select never reached the table"
            selected = int(counter.inner_text().split(" of")[0].replace(",", ""))
            assert 0 < selected < 400
            rows = selection_table(page).locator(".tabulator-row")
            assert wait_until(lambda: rows.count() > 0)
            page.get_by_placeholder("new or existing label").fill("owls")
            page.get_by_placeholder("new or existing label").press("Enter")
            page.get_by_role("button", name="Label selection").click()
            owls = label_summary(page).locator(".tabulator-row", has_text="owls")
            owls.wait_for(timeout=10_000)
            assert owls.locator(".tabulator-cell[tabulator-field='count']").inner_text() == str(selected)
            open_section(page, "Download")
            page.get_by_role("button", name="CSV").wait_for(timeout=10_000)
            assert page.get_by_role("button", name="Parquet").count() == 0  # the static page writes no files
            with page.expect_download() as info:
                page.get_by_role("button", name="CSV").click()
            csv = pd.read_csv(info.value.path())
            assert len(csv) == selected and set(csv.label) == {"owls"}
            assert set(csv.path) <= set(results.frame.path)
            browser.close()
    finally:
        interrupt(server, 10)
