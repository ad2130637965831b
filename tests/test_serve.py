"""`bulk-panel serve FOLDER` end to end: the page runs the pipeline with progress, shows the
map, writes the results file, and serves nothing outside what it loaded."""
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from bulk_panel import load_results

from conftest import demo_subset
from test_ui import ARGS, CHROMIUM, _free_port

pytestmark = pytest.mark.ui


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_serve_a_folder_runs_the_pipeline_in_the_page(tmp_path, cache_dir):
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    folder = demo_subset(tmp_path / "images", per_category=6)
    (tmp_path / "secret.png").write_bytes((folder / "food").iterdir().__next__().read_bytes())
    output = tmp_path / "out.parquet"
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bulk_panel", "serve", str(folder), "--port", str(port), "-o", str(output), "-q"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if status_of(base + "/bulk_panel") == 200:
                    break
            except OSError:
                time.sleep(0.5)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "/bulk_panel", timeout=120_000)
            page.wait_for_selector("text=/done: 18 images/", timeout=300_000)
            page.wait_for_selector("text=/Map · 18 images/", timeout=60_000)
            assert page.locator("canvas").count() > 0
            assert not errors
            browser.close()
        results = load_results(output)
        assert len(results.frame) == 18
        digest = results.frame.content_hash[0]
        assert status_of(f"{base}/thumbs/{digest}.jpg") == 200
        assert status_of(f"{base}/thumbs/{'0' * 32}.jpg") == 404  # not in the loaded results
        for probe in ("/thumbs/../../etc/passwd", "/thumbs/%2e%2e%2fsecret.png", "/thumbs/secret.png"):
            assert status_of(base + probe) == 404
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
