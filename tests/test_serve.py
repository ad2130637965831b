"""`bulk-panel serve FOLDER` end to end: the page runs the pipeline with progress, shows the
map, writes the results file, and serves nothing outside what it loaded."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from bulk_panel import load_results
from bulk_panel.compute.cache import content_hash

from helpers import (
    ARGS, CHROMIUM, DEMO, chromium, demo_subset, free_port, interrupt, serving, status_of, wait_until,
    label_summary,
)


pytestmark = pytest.mark.ui


def answers(url: str) -> bool:
    try:
        return status_of(url) == 200
    except OSError:  # not listening yet
        return False


@pytest.mark.slow
def test_serve_a_folder_runs_the_pipeline_in_the_page(tmp_path, cache_dir):
    """The page runs the pipeline and shows the map; the thumbnail route serves an image the page
    showed (whichever the clustering put in view) and refuses one it never showed."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    folder = demo_subset(tmp_path / "images", per_category=6)
    (tmp_path / "secret.png").write_bytes((folder / "food").iterdir().__next__().read_bytes())
    elsewhere = sorted((DEMO / "plants").glob("*.png"))[0]  # a real image, not in the folder
    output = tmp_path / "out.parquet"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bulk_panel", "serve", str(folder), "--port", str(port), "-o", str(output), "-q"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "server.log").open("w"),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: server.poll() is not None or answers(base + "/bulk_panel"), timeout=180), \
            "the server did not answer in 180 s"
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/bulk_panel", timeout=120_000)
            page.wait_for_selector("text=/Map · 18 images/", timeout=300_000)  # the run's results, shown
            assert page.locator("canvas").count() > 0
            # the thumbnails the page shows (the label summary's, at least one per label), loaded
            label_summary(page)
            thumbs = page.locator("img[src*='/thumbs/']")
            thumbs.first.wait_for(timeout=60_000)
            thumbs.first.evaluate("img => img.decode()")  # rejects unless the route answered with an image
            sources = thumbs.evaluate_all("imgs => imgs.map(i => i.getAttribute('src'))")
            shown = {m[1] for src in sources if (m := re.search(r"/thumbs/([0-9a-f]{32})\.jpg", src))}
            assert not errors
            browser.close()
        results = load_results(output)
        assert len(results.frame) == 18
        assert shown and shown <= set(results.frame.content_hash)
        for digest in shown:
            assert status_of(f"{base}/thumbs/{digest}.jpg") == 200
        never_shown = [content_hash(elsewhere.read_bytes()), "0" * 32]  # not in the loaded results
        for digest in never_shown:
            assert status_of(f"{base}/thumbs/{digest}.jpg") == 404
        for probe in ("/thumbs/../../etc/passwd", "/thumbs/%2e%2e%2fsecret.png", "/thumbs/secret.png"):
            assert status_of(base + probe) == 404
    finally:
        interrupt(server, 10)


# ---------------------------------------------------------------------------------------
# nothing outside the chosen folder is served (plain HTTP against an in-process server)
# ---------------------------------------------------------------------------------------
SECRET = "TOP-SECRET-bulk-panel-sentinel"


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written (no client-side normalising of '..' or '%2e')."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def crafted(tmp_path, cache_dir):
    """An image folder with a symlink out of it, a secret file beside it, and results that name
    the inside image, the escaping link, '../secret.png' and the secret's absolute path."""
    from PIL import Image

    from bulk_panel.compute.cache import content_hash
    from bulk_panel.compute.results import Results, build_frame

    root = tmp_path / "images"
    root.mkdir()
    Image.new("RGB", (16, 16), "red").save(root / "ok.png")
    Image.new("RGB", (16, 16), "blue").save(tmp_path / "secret.png")
    (tmp_path / "secret.txt").write_text(SECRET)
    (root / "escape.png").symlink_to(tmp_path / "secret.png")
    rels = ["ok.png", "escape.png", "../secret.png", str(tmp_path / "secret.png")]
    hashes = [content_hash((root / "ok.png").read_bytes())] + [content_hash((tmp_path / "secret.png").read_bytes())] * 3
    hashes[2] = content_hash(b"../secret.png")
    hashes[3] = content_hash(b"absolute")
    n = len(rels)
    frame = build_frame(rels, hashes, np.full((n, 2), 16), np.arange(2 * n, dtype=float).reshape(n, 2), [0] * n,
                        np.ones(n), np.zeros(n), ["a"] * n)
    return Results(frame=frame, meta={"image_root": str(root)}), tmp_path, hashes


TRAVERSALS = [
    "/thumbs/../../../../etc/passwd",
    "/thumbs/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/thumbs/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/thumbs/%252e%252e%252f%252e%252e%252fetc%252fpasswd",  # double-encoded
    "/thumbs/..%5c..%5c..%5cetc%5cpasswd",  # backslashes
    "/thumbs//etc/passwd",
    "/thumbs/%2fetc%2fpasswd",
    "/thumbs/{abs}/secret.txt",
    "/thumbs/secret.txt",
    "/{abs}/secret.txt",
    "//{abs}/secret.txt",
    "/../../../../etc/passwd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/../../../../../../etc/passwd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/static/{abs}/secret.txt",
    "/static/extensions/panel/../../../../../../../../etc/passwd",
    "/static/extensions/panel/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/components/panel/../../etc/passwd",
    "/components/os/../../../etc/passwd",
    "/crafted/../../../../etc/passwd",
    "/exports/../../../../etc/passwd",
    "/exports/%2e%2e%2f%2e%2e%2fetc%2fpasswd/images.zip",
    "/exports/" + "A" * 32 + "/images.zip",  # a guessed session token
    "/exports/" + "A" * 32 + "/../../../etc/passwd",
]
# Panel 1.9's component-resource route answers a '..' module name with a 500 (importlib's
# TypeError for a relative import), a bare error page: wrong code, nothing leaked.
PANEL_500 = ["/components/../../../../../../etc/passwd", "/components/..%2f..%2fetc/passwd"]


def showing_every_row(target):
    """A served session's page whose selection table lists every row (so every row's image is
    shown, and the thumbnail route allows it when it lies inside the folder)."""
    from bulk_panel.compute.results import ResultsError
    from bulk_panel.server.session import error_page, make_dashboard

    try:
        dashboard = make_dashboard(target)
    except ResultsError as exc:
        return error_page(str(exc))
    dashboard.store.selection = np.arange(dashboard.store.n_rows)
    return dashboard.page()


def test_nothing_outside_the_folder_is_served(crafted):
    results, outside, hashes = crafted
    with serving({"crafted": lambda: showing_every_row(results)}) as base:
        assert raw_get(base, "/crafted")[0] == 200  # the session shows the results' images
        status, body = raw_get(base, f"/thumbs/{hashes[0]}.jpg")
        assert status == 200 and body[:2] == b"\xff\xd8"  # the image inside the folder is served
        for digest in hashes[1:]:  # the escaping symlink, '../secret.png', an absolute path
            assert raw_get(base, f"/thumbs/{digest}.jpg")[0] == 404
            assert raw_get(base, f"/thumbs/{digest}.jpg?size=preview")[0] == 404
        for probe in TRAVERSALS + PANEL_500 + ["/crafted?path=../../../../etc/passwd"]:
            path = probe.format(abs=str(outside).lstrip("/"))
            status, body = raw_get(base, path)
            expected = (400, 403, 404) if probe in TRAVERSALS else (500,) if probe in PANEL_500 else (200,)
            assert status in expected, (path, status)
            assert SECRET.encode() not in body and b"root:x:0:0" not in body, path


# ---------------------------------------------------------------------------------------
# a corrupt or foreign results file: a clear message, and the server keeps serving
# ---------------------------------------------------------------------------------------
def test_serve_refuses_a_corrupt_results_file_at_launch_on_one_line(tmp_path):
    bad = tmp_path / "bad <name>.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "serve", str(bad), "--port", str(free_port())],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(f"bulk-panel: error: {bad}: not a readable Parquet file (")


def test_a_results_file_broken_while_served_gives_a_message_and_serving_goes_on(crafted, tmp_path):
    import pandas as pd

    results, _, hashes = crafted
    path = results.save(tmp_path / "results.parquet")
    good = path.read_bytes()
    foreign = tmp_path / "foreign.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(foreign)
    broken = [
        (b"PAR1 garbage", "not a readable Parquet file"),
        (good[: len(good) // 2], "not a readable Parquet file"),  # a torn copy
        (foreign.read_bytes(), "a Parquet file, but not bulk_panel results"),
    ]
    with chromium() as browser, serving({"app": lambda: showing_every_row(path)}) as base:
        first = browser.new_page()
        first.goto(base + "app")
        first.get_by_text("Map · 4 images").wait_for(timeout=60_000)
        for data, message in broken:
            path.write_bytes(data)
            page = browser.new_page()
            page.goto(base + "app")
            page.get_by_text("The results could not be opened.").wait_for(timeout=60_000)
            page.get_by_text(f"{path}: {message}", exact=False).wait_for(timeout=10_000)
            page.close()
            assert raw_get(base, f"/thumbs/{hashes[0]}.jpg")[0] == 200  # what was loaded is still served
        assert first.get_by_text("Map · 4 images").is_visible()  # the open session lives on
        path.write_bytes(good)  # fixed: the next session gets the dashboard again
        again = browser.new_page()
        again.goto(base + "app")
        again.get_by_text("Map · 4 images").wait_for(timeout=60_000)


def test_prepare_server_builds_a_first_page_and_leaves_datashader_out_of_a_small_map(tmp_path):
    """At start, a server reads its results and builds one page unseen; a map below
    rasterize_above imports neither datashader nor SciPy (a smaller server), a larger one warms
    datashader."""
    import json

    from helpers import synthetic_results

    for n in (300, 25_000):
        synthetic_results(n).save(tmp_path / f"r{n}.parquet")
    script = (
        "import json, sys\n"
        "from bulk_panel.server.session import prepare_server\n"
        "from bulk_panel.server.target import resolve_target\n"
        "from bulk_panel.views import shared_results\n"
        "target = resolve_target(sys.argv[1])\n"
        "prepare_server(target)\n"
        "print(json.dumps({'cached': shared_results(target.path) is shared_results(target.path),\n"
        "                  'datashader': 'datashader' in sys.modules, 'scipy': 'scipy' in sys.modules,\n"
        "                  'plotting': 'holoviews.plotting.bokeh' in sys.modules}))\n"
    )
    seen = {}
    for n in (300, 25_000):
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"r{n}.parquet")], capture_output=True,
                             text=True, timeout=300, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        seen[n] = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen[300] == {"cached": True, "datashader": False, "scipy": False, "plotting": True}
    assert seen[25_000]["datashader"] and seen[25_000]["plotting"]
