"""A new user's first hour: `bulk-panel serve` on a taken port and `--show` without a browser, a
wheel (not the editable checkout) that finds its demo images, the run summary on identical
files, the shared page where the CDNs cannot be reached, and the small things (log lines above
the progress bar, help texts)."""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from bulk_panel.cli import DEFAULT_PORT, CommandError, _Bars, listen, make_parser, open_browser, summary
from bulk_panel.share import add_offline_notice

from helpers import (
    ARGS, CHROMIUM, DEMO, REPO, free_port, interrupt, status_of, synthetic_results, wait_until,
)

SERVE_TIMEOUT = 120  # seconds for a served page to answer (a cold import of Panel and friends)
URL = re.compile(r"http://\S+")


def command(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bulk_panel", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def held_port(port: int):
    """``port`` on 127.0.0.1 taken by this test (or already taken by someone else) while inside."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        pass  # in use already: just as good
    try:
        yield port
    finally:
        sock.close()


@contextlib.contextmanager
def serve_process(args, env=None, cwd=None):
    """``bulk-panel serve ARGS`` in a subprocess; yields (process, the stderr lines read so far)
    once it printed its URL (or exited)."""
    proc = subprocess.Popen([sys.executable, "-m", "bulk_panel", "serve", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        for line in proc.stderr:
            lines.append(line)
            if URL.search(line) and "serving" in line:
                break
        yield proc, lines
    finally:
        interrupt(proc, 15)


# ---------------------------------------------------------------------------------------------
# bulk-panel serve: the port, the URL, --show
# ---------------------------------------------------------------------------------------------
def test_serve_takes_the_next_free_port_and_the_printed_url_answers(tmp_path):
    results = synthetic_results(50).save(tmp_path / "r.parquet")
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"  # a browser that writes down what it was asked to open
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{opened}"\n')
    browser.chmod(0o755)
    env = {**os.environ, "BROWSER": str(browser)}
    with held_port(DEFAULT_PORT), serve_process([results, "--show"], env=env, cwd=tmp_path) as (proc, lines):
        assert proc.poll() is None, "".join(lines)
        line = lines[-1]
        url = URL.search(line).group(0)
        port = int(url.split(":")[2].split("/")[0])
        assert port != DEFAULT_PORT and f"port {DEFAULT_PORT} is in use" in line
        assert url == f"http://127.0.0.1:{port}/bulk_panel"
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # printed only once it listens
        assert wait_until(lambda: opened.exists() and opened.read_text() == url, timeout=30), "no browser opened"
        assert status_of(url) == 200
    assert not any("Errno" in x or "Traceback" in x for x in lines), "".join(lines)


def test_serve_on_a_taken_explicit_port_fails_in_one_line_naming_it(tmp_path):
    results = synthetic_results(20).save(tmp_path / "r.parquet")
    with held_port(free_port()) as port:
        out = command("serve", results, "--port", port, cwd=tmp_path, timeout=SERVE_TIMEOUT)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr and "serving" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"bulk-panel: error: port {port} on 127.0.0.1 is in use") and "--port" in last


def test_listen_tries_ports_upwards_only_without_an_explicit_port():
    taken = {DEFAULT_PORT, DEFAULT_PORT + 1}

    def bind(port):
        if port in taken:
            raise OSError(98, "Address already in use")
        return port

    assert listen(bind, "127.0.0.1", None) == DEFAULT_PORT + 2
    assert listen(bind, "127.0.0.1", 7000) == 7000
    with pytest.raises(CommandError, match=rf"port {DEFAULT_PORT} on 127.0.0.1 is in use: choose another with --port"):
        listen(bind, "127.0.0.1", DEFAULT_PORT)

    def unavailable(port):
        raise OSError(99, "Cannot assign requested address")

    with pytest.raises(CommandError, match=r"cannot listen on 10\.9\.9\.9:5006: Cannot assign requested address"):
        listen(unavailable, "10.9.9.9", None)
    with pytest.raises(CommandError, match="are all in use"):
        listen(lambda port: bind(DEFAULT_PORT), "127.0.0.1", None)


def test_show_without_a_browser_says_so_on_one_line(monkeypatch, capsys):
    import webbrowser

    def no_browser(*args, **kwargs):
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "get", no_browser)
    assert open_browser("http://127.0.0.1:5007/bulk_panel") is False
    err = capsys.readouterr().err
    assert err == "bulk_panel: could not open a web browser here; open http://127.0.0.1:5007/bulk_panel in one\n"

    class Refusing:  # a browser command that exits with an error
        def open(self, url, new=0):
            return False

    monkeypatch.setattr(webbrowser, "get", lambda *a: Refusing())
    assert open_browser("http://127.0.0.1:5007/bulk_panel") is False
    assert "could not open a web browser" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# a wheel, installed apart from the checkout
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wheel_install(tmp_path_factory):
    """The project built into a wheel (from a copy of its sources) and installed with
    ``pip install --no-deps --target``: (wheel, target folder, the build's output)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((REPO / name).read_bytes())
    import shutil

    shutil.copytree(REPO / "bulk_panel", src / "bulk_panel", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                            "-w", str(base / "dist"), str(src)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (wheel,) = (base / "dist").glob("bulk_panel-*.whl")
    target = base / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                              str(target), str(wheel)], capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    return wheel, target, build.stdout + build.stderr


def in_wheel_env(target: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(target), "PYTHONDONTWRITEBYTECODE": "1"}


def test_wheel_holds_the_package_and_its_demo_images_and_builds_without_warnings(wheel_install):
    wheel, _, log = wheel_install
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"bulk_panel", "bulk_panel-0.1.0.dist-info"}  # no tests, scripts, examples or assets
    pngs = [n for n in names if n.startswith("bulk_panel/demo/") and n.endswith(".png")]
    assert len(pngs) == 300 and "bulk_panel/demo/CREDITS.md" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert "License-Expression: MIT" in metadata
    assert "project.license" not in log and "SetuptoolsDeprecationWarning" not in log, log[-3000:]
    print(f"\nwheel {wheel.name}: {wheel.stat().st_size / 1e6:.1f} MB, {len(names)} files, "
          f"{sum(n.endswith('.py') for n in names)} modules ({', '.join(sorted(n for n in names if 'bench' in n))})")


def test_installed_wheel_finds_its_demo_images(wheel_install, tmp_path):
    _, target, _ = wheel_install
    probe = (
        "import json, bulk_panel, bulk_panel.cli as cli\n"
        "print(json.dumps({'module': bulk_panel.__file__, 'demo': str(cli.DEMO_FOLDER),\n"
        "                  'images': len(list(cli.DEMO_FOLDER.rglob('*.png')))}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=in_wheel_env(target),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(found["module"]).resolve().is_relative_to(target.resolve()), found  # not the checkout
    assert Path(found["demo"]).resolve() == (target / "bulk_panel" / "demo").resolve() and found["images"] == 300
    helped = subprocess.run([str(target / "bin" / "bulk-panel"), "demo", "--help"], cwd=tmp_path,
                            env=in_wheel_env(target), capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0, helped.stderr[-3000:]
    assert "bulk_panel/demo" in "".join(helped.stdout.split())  # the wheel's own command; wrapped at any hyphen


@pytest.mark.slow
def test_demo_from_the_wheel_runs_on_all_its_images_and_names_the_identical_pair(wheel_install, tmp_path):
    _, target, _ = wheel_install
    env = {**in_wheel_env(target), "BULK_PANEL_CACHE": str(tmp_path / "cache")}
    first = subprocess.run([str(target / "bin" / "bulk-panel"), "demo", "-o", "demo.parquet", "-q"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=1200)
    assert first.returncode == 0, first.stderr[-3000:]
    # two demo files have the same bytes: one vector, and the summary says why, not "from cache"
    assert "images found     300\n" in first.stdout
    assert "  embedded       299\n" in first.stdout
    assert "  identical      1 file with the same content as another file here (embedded once)\n" in first.stdout
    assert "  from cache     0\n" in first.stdout and "skipped        0\n" in first.stdout
    again = subprocess.run([str(target / "bin" / "bulk-panel"), "demo", "-o", "demo.parquet", "-q"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=1200)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "  embedded       0\n" in again.stdout and "  from cache     300\n" in again.stdout
    assert "identical" not in again.stdout


# ---------------------------------------------------------------------------------------------
# the run summary: cache hits and identical files
# ---------------------------------------------------------------------------------------------
class _Results:
    def __init__(self, counts):
        import pandas as pd

        self.meta = {"counts": {"found": 10, "used": 10, "skipped": 0, "clusters": 2, "noise": 1, **counts},
                     "timings": {"embed": 1.0}, "min_cluster_size_used": 5, "model": "m", "weights": "w"}
        self.skipped = pd.DataFrame(columns=["path", "reason"])


def test_summary_tells_identical_files_from_cache_hits():
    first = summary(_Results({"embedded": 8, "identical": 2, "cached": 0}), Path("r.parquet"), 1.0)
    assert "  embedded       8\n  identical      2 files with the same content as another file here (embedded once)\n" \
           "  from cache     0\n" in first
    rerun = summary(_Results({"embedded": 0, "identical": 0, "cached": 10}), Path("r.parquet"), 1.0)
    assert "  embedded       0\n  from cache     10\n" in rerun and "identical" not in rerun
    older = summary(_Results({"embedded": 3, "cached": 7}), Path("r.parquet"), 1.0)  # results without the count
    assert "  embedded       3\n  from cache     7\n" in older


@pytest.mark.slow
def test_embedder_counts_identical_files_apart_from_cache_hits(embedder, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    sources = sorted((DEMO / "animals").glob("*.png"))[:3]
    for src in sources:
        (folder / src.name).write_bytes(src.read_bytes())
    (folder / "copy.png").write_bytes(sources[0].read_bytes())
    (folder / "other copy.png").write_bytes(sources[0].read_bytes())
    paths = sorted(p.name for p in folder.iterdir())
    embedder.fit(folder, paths, tmp_path / "cache")
    assert embedder.counts_ == {"embedded": 3, "cached": 0, "skipped": 0} and embedder.identical_ == 2
    embedder.fit(folder, paths, tmp_path / "cache")
    assert embedder.counts_ == {"embedded": 0, "cached": 5, "skipped": 0} and embedder.identical_ == 0
    # a new copy of a file embedded in an earlier run is a cache hit, not "identical"
    (folder / "third copy.png").write_bytes(sources[1].read_bytes())
    embedder.fit(folder, paths + ["third copy.png"], tmp_path / "cache")
    assert embedder.counts_ == {"embedded": 0, "cached": 6, "skipped": 0} and embedder.identical_ == 0


# ---------------------------------------------------------------------------------------------
# log lines and progress bars; help texts
# ---------------------------------------------------------------------------------------------
def test_log_lines_print_above_the_progress_bar_not_inside_it(capsys):
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)  # what the CLI's logging.basicConfig installs
    handler.setFormatter(logging.Formatter("%(message)s"))
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        with _Bars(True) as bars:
            bars("embed", 0, 40)
            bars("embed", 8, 40)
            logging.getLogger("bulk_panel").info("exporting the model to ONNX")
            bars("embed", 40, 40)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    err = capsys.readouterr().err
    (line,) = [x for x in err.split("\n") if "exporting the model" in x]
    assert line.split("\r")[-1] == "exporting the model to ONNX"  # the bar was cleared first
    assert root.handlers.count(handler) == 0 and "embed: 100%" in err


def test_help_says_what_the_defaults_do():
    parser = make_parser()
    run_help = " ".join(parser._subparsers._group_actions[0].choices["run"].format_help().split())
    assert "(default: none: embed in this process, without Dask)" in run_help
    assert "results file; folders missing on its path are created (default: results.parquet)" in run_help
    serve_help = " ".join(parser._subparsers._group_actions[0].choices["serve"].format_help().split())
    assert f"(default: {DEFAULT_PORT}, or the next free port above it)" in serve_help
    assert "says so when there is no browser" in serve_help


# ---------------------------------------------------------------------------------------------
# the shared page where the CDNs cannot be reached
# ---------------------------------------------------------------------------------------------
def test_offline_notice_goes_first_into_the_head():
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        html, worker = Path(tmp) / "index.html", Path(tmp) / "index.js"
        html.write_text('<!doctype html><html><head lang="en"><script src="https://cdn.bokeh.org/b.js"></script>'
                        '<link href="https://fonts.googleapis.com/css?x" rel="stylesheet"></head><body></body></html>')
        worker.write_text('importScripts("https://cdn.jsdelivr.net/pyodide/v0/full/pyodide.js");')
        hosts = add_offline_notice(html, worker)
        text = html.read_text()
    assert hosts == ["cdn.bokeh.org", "cdn.jsdelivr.net", "fonts.googleapis.com"]
    head = text.index('<head lang="en">') + len('<head lang="en">')
    assert text.index("bulk-panel-offline") > head and text.index("bulk-panel-offline") < text.index("cdn.bokeh.org/b.js")
    assert 'var CDN_HOSTS = ["cdn.bokeh.org", "cdn.jsdelivr.net"];' in text


@pytest.fixture(scope="module")
def shared_site(tmp_path_factory):
    """``bulk-panel share`` on synthetic results: (the site folder, the command's stdout)."""
    base = tmp_path_factory.mktemp("share")
    results = synthetic_results(200, seed=3).save(base / "blobs.parquet")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "BULK_PANEL_CACHE": str(base / "cache")}
    out = subprocess.run([sys.executable, "-m", "bulk_panel", "share", str(results), "-o", str(base / "site")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return base / "site", out.stdout


def test_share_says_the_page_needs_the_cdns(shared_site):
    _, stdout = shared_site
    (line,) = [x for x in stdout.splitlines() if x.startswith("needs internet")]
    assert "loads Pyodide and its packages from public CDNs" in line
    assert "cdn.jsdelivr.net" in line and "cdn.holoviz.org" in line and "PyPI" in line


@contextlib.contextmanager
def static_server(folder: Path):
    """``folder`` served over HTTP on 127.0.0.1 in a thread; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


@contextlib.contextmanager
def offline_page(local=None):
    """A Chromium page on which every request to a host other than 127.0.0.1 fails (aborted, and
    no name resolves, for requests Playwright does not see); ``local(url)`` may give a file to
    answer such a request with instead."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    aborted = []

    def route(request_route):
        url = request_route.request.url
        if url.startswith("http://127.0.0.1:"):
            return request_route.continue_()
        path = local(url) if local else None
        if path is not None and path.is_file():
            return request_route.fulfill(path=str(path))
        aborted.append(url)
        return request_route.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=[*ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.route("**/*", route)
            yield page, aborted
        finally:
            browser.close()


def oversized(page) -> list:
    """The elements drawn larger than the viewport."""
    return page.evaluate("""() => [...document.querySelectorAll('body *')]
        .map(e => [e.tagName, e.id, e.getBoundingClientRect()])
        .filter(([, , r]) => r.width > innerWidth || r.height > innerHeight)
        .map(([tag, id, r]) => `${tag}#${id} ${r.width}x${r.height}`)""")


def assert_readable_notice(page, expect_host: str):
    notice = page.locator("#bulk-panel-offline")
    notice.wait_for(state="visible", timeout=60_000)
    page.wait_for_load_state("load", timeout=60_000)
    text = " ".join(notice.inner_text().split())
    assert text.startswith("This page could not load what it runs on")
    assert "Pyodide" in text and "bulk-panel serve RESULTS" in text
    assert re.search(rf"From here, [^:]*{re.escape(expect_host)}[^:]* could not be reached", text), text
    assert notice.evaluate("e => getComputedStyle(e).position") == "fixed"  # styled: the inline style sheet applied
    assert oversized(page) == []  # no icon drawn at the size of the page
    box, size = notice.bounding_box(), page.viewport_size
    assert abs(box["width"] - size["width"]) < 20 and abs(box["height"] - size["height"]) < 20  # covers the page


@pytest.mark.ui
def test_shared_page_without_the_cdns_shows_a_readable_message(shared_site):
    site, _ = shared_site
    with static_server(site) as base, offline_page() as (page, aborted):
        page.goto(base + "index.html")
        assert_readable_notice(page, "cdn.bokeh.org")
        assert any("cdn.holoviz.org" in url for url in aborted)


@pytest.mark.ui
def test_shared_page_whose_pyodide_cannot_load_shows_the_message(shared_site):
    """The page's own scripts and styles answer (from local copies), Pyodide's CDN does not: the
    worker fails to start, and the page says so."""
    import bokeh
    import panel

    bokeh_js = Path(bokeh.__file__).parent / "server" / "static" / "js"
    panel_dist = Path(panel.__file__).parent / "dist"

    def local(url):
        match = re.match(r"https://cdn\.bokeh\.org/bokeh/release/(bokeh(?:-[a-z]+)?)-[\d.]+\.min\.js$", url)
        if match:
            return bokeh_js / f"{match.group(1)}.min.js"
        match = re.match(r"https://cdn\.holoviz\.org/panel/[\d.]+/dist/([^?#]+)", url)
        if match:
            return panel_dist / match.group(1).replace("%5E", "^")
        return None

    site, _ = shared_site
    with static_server(site) as base, offline_page(local) as (page, aborted):
        page.goto(base + "index.html")
        assert_readable_notice(page, "cdn.jsdelivr.net")
        assert not any("cdn.bokeh.org" in url or "cdn.holoviz.org/panel" in url for url in aborted), aborted
        assert any("/pyodide/" in url for url in aborted)
