"""What the tests share: real demo images and synthetic results, a served dashboard and Debian's
Chromium driving it, and a hostile image folder made at test time.

Test modules import from here (``from helpers import ...``); no test module imports another.

The hostile corpus (:func:`write_corpus`) has no committed blobs:

>>> corpus = write_corpus(tmp_path / "hostile")
>>> corpus.good      # relative paths that must end up in the results
>>> corpus.bad       # relative path -> the start of the reason it must be skipped with
>>> corpus.twins     # relative path -> the plain file it must embed like

It holds empty, truncated JPEG/PNG, text and HTML named as images, a PNG declaring
100,000 × 100,000 pixels, a very large real image, CMYK, 16-bit, palette with transparency, LA,
animated GIF, EXIF orientations 1-8, awkward names (spaces, unicode, emoji, newline, quotes,
markup, 250 bytes), a symlink out of the folder, symlink loops, an unreadable file (when not
root) and exact duplicates. The pictures are the bundled demo drawings, so embeddings mean
something.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bulk_panel
from bulk_panel.compute.cache import content_hash
from bulk_panel.compute.results import Results, build_frame

REPO = Path(__file__).resolve().parent.parent
DEMO = Path(bulk_panel.__file__).resolve().parent / "demo"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

# ---- real images and results -----------------------------------------------------------------------


def demo_subset(dest: Path, categories=("animals", "food", "transportation"), per_category=8) -> Path:
    """Copy the first ``per_category`` demo images of each category into ``dest``."""
    for category in categories:
        (dest / category).mkdir(parents=True, exist_ok=True)
        for src in sorted((DEMO / category).glob("*.png"))[:per_category]:
            shutil.copy2(src, dest / category / src.name)
    return dest


def variants_folder(dest: Path, sources=3, per_source=8) -> Path:
    """``sources`` demo drawings × ``per_source`` edited copies (crop, flip, tilt, tone):
    real images whose true grouping is known for certain."""
    from PIL import ImageEnhance, ImageOps

    picks = [sorted((DEMO / c).glob("*.png"))[5] for c in ("animals", "buildings", "food", "people")[:sources]]
    for s, src in enumerate(picks):
        rgba = Image.open(src).convert("RGBA")
        base = Image.new("RGB", rgba.size, "white")
        base.paste(rgba, mask=rgba.split()[3])
        w, h = base.size
        (dest / f"group{s}").mkdir(parents=True, exist_ok=True)
        for v in range(per_source):
            img = base.crop((v * w // 40, v * h // 50, w - (v % 3) * w // 30, h - (v % 4) * h // 40))
            if v % 2:
                img = ImageOps.mirror(img)
            img = img.rotate((v - 4) * 3, expand=True, fillcolor="white")
            img = ImageEnhance.Brightness(img).enhance(0.85 + 0.05 * v)
            img.save(dest / f"group{s}" / f"v{v}.jpg", quality=90)
    return dest


def drawn_images(tmp_path, count=4):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    paths, hashes = [], []
    for i in range(count):
        rel = f"a/pic {i}.png" if i else "a/../evil name.png".replace("../", "")
        Image.new("RGB", (200 + i, 100), (40 * i, 80, 120)).save(root / rel)
        paths.append(rel)
        hashes.append(content_hash((root / rel).read_bytes()))
    return root, paths, hashes

HOSTILE_LABEL = "<b onmouseover=alert(2)>bold</b>"

def real_results(folder: Path):
    """Six real demo images in ``folder``, two under hostile names with a hostile label."""
    sources = sorted((DEMO / "animals").glob("*.png"))[:4] + sorted((DEMO / "food").glob("*.png"))[:2]
    rels = ["cats/a.png", "cats/b.png", "cats/c.png", "cats/d.png", f"odd/{HOSTILE_NAME}", "odd/it's \"q\".png"]
    for src, rel in zip(sources, rels):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, folder / rel)
    n = len(rels)
    frame = build_frame(
        paths=rels, hashes=[content_hash((folder / r).read_bytes()) for r in rels], sizes=np.full((n, 2), 64),
        xy=np.array([[0, 0], [1, 0], [0, 1], [1, 1], [5, 5], [6, 5]], dtype=float), clusters=[0, 0, 0, 0, 1, 1],
        probabilities=np.full(n, 0.9), outlier_scores=np.zeros(n), labels=["cats"] * 4 + [HOSTILE_LABEL] * 2,
    )
    vectors = np.random.default_rng(0).normal(size=(n, 16)).astype(np.float32)  # for 'more like this'
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Results(frame=frame, meta={"image_root": str(folder)}, _embeddings=vectors)


def synthetic_results(n=200, clusters=4, seed=0, paths=None, hashes=None, image_root=None) -> Results:
    """Blobs of points around ``clusters`` centres, some noise; no model, no UMAP."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(-1, clusters, n)
    centres = rng.uniform(-10, 10, (clusters + 1, 2))
    xy = centres[cluster + 1] + rng.normal(scale=1.0, size=(n, 2))
    frame = build_frame(
        paths=paths if paths is not None else [f"group {i % 3}/img <{i}>.png" for i in range(n)],
        hashes=hashes if hashes is not None else [f"{i:032x}" for i in range(n)],
        sizes=np.full((n, 2), 64),
        xy=xy,
        clusters=cluster,
        probabilities=np.where(cluster == -1, 0.0, rng.uniform(0.2, 1.0, n)),
        outlier_scores=rng.random(n),
        labels=["noise" if c == -1 else f"cluster {c}" for c in cluster],
    )
    meta = {"image_root": str(image_root)} if image_root else {}
    return Results(frame=frame, meta=meta)


def results_with_vectors(n=120, seed=1) -> Results:
    """Synthetic results with embeddings: row 1 is a near-copy of row 0, row 2 an exact copy."""
    results = synthetic_results(n, seed=seed)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, 32)).astype(np.float32)
    vectors[1] = vectors[0] + 0.01 * rng.normal(size=32)
    vectors[2] = vectors[0]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hashes = results.frame["content_hash"].to_numpy(dtype=object).copy()
    hashes[2] = hashes[0]
    results.frame = results.frame.assign(content_hash=hashes)
    results._embeddings = vectors
    return results


def small_pipeline(cache: Path):
    """The real pipeline (model, UMAP, HDBSCAN) sized for a dozen images."""
    from bulk_panel.compute.pipeline import Pipeline

    pipeline = Pipeline(cache_dir=str(cache))
    pipeline.embedder.workers = 0
    pipeline.embedder.batch_size = 8
    pipeline.projector.cluster_dims = 5  # real UMAP even on 12 images (it falls back below dims + 3)
    pipeline.clusterer.min_cluster_size = 3
    return pipeline


# ---- a served dashboard in Debian's Chromium -------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def interrupt(proc, timeout: float = 10.0) -> None:
    """Stop a server subprocess as Ctrl+C does (SIGINT); kill it when it has not ended in ``timeout``
    seconds (``panel serve`` may ignore SIGINT for a while)."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(predicate, timeout=15.0, interval=0.1):
    """Poll ``predicate`` every ``interval`` seconds until it is true (True) or ``timeout`` passes (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return False


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 (False while nothing listens yet)."""
    try:
        return status_of(url) == 200
    except OSError:
        return False


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def serving(apps: dict):
    """Serve ``{name: build()}`` with the thumbnail route in a thread; yields the base URL."""
    import panel as pn

    from bulk_panel.server import ROUTES

    pn.extension("tabulator", notifications=True)
    port = free_port()
    server = pn.serve(apps, port=port, address="127.0.0.1", threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}"], extra_patterns=ROUTES)
    try:
        assert wait_until(lambda: listening(port), timeout=60), f"nothing listens on port {port}"  # bound a moment later
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.stop()


def dashboard_sessions(tmp_path, make_store):
    """An app for :func:`serving`: each session a :class:`Dashboard` page on ``make_store()``
    (thumbnails under ``tmp_path``, not the user's cache); returns ``(app, sessions)``, where
    ``sessions`` collects each session's ``(document, store)``, for :func:`in_session`."""
    import panel as pn

    from bulk_panel.views import Dashboard, shared_thumbnails

    thumbs = shared_thumbnails()
    thumbs.folder = tmp_path / "thumbs"
    sessions = []

    def app():
        dashboard = Dashboard(store=make_store(), thumbnails=thumbs)
        sessions.append((pn.state.curdoc, dashboard.store))
        return dashboard.page()

    return app, sessions


@contextlib.contextmanager
def chromium():
    """A headless Debian Chromium through Playwright (skips the test when either is missing)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


#: the page's Bokeh plot views (HoloViews draws a bokeh ``figure``)
_PLOT_VIEWS = "[...Bokeh.index.query(v => ['Plot', 'Figure'].includes(v.model.type))]"


def wait_for_plot(page, timeout: float = 60_000) -> None:
    """Wait until the page's Bokeh document is idle and its plots are drawn and laid out: every
    plot view finished rendering, with a frame of non-zero size, at the same place on two polls
    in a row (Bokeh lays a plot out again after its canvas first appears)."""
    page.wait_for_function(
        """() => {
            if (!(window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].is_idle)) return false;
            const plots = %s;
            if (!plots.length || !plots.every(v => v.has_finished() && v.frame.bbox.width > 0 && v.frame.bbox.height > 0))
                return false;
            const layout = JSON.stringify(plots.map(v => {
                const r = v.canvas.el.getBoundingClientRect();
                return [r.x, r.y, r.width, r.height, v.frame.bbox.x, v.frame.bbox.y, v.frame.bbox.width, v.frame.bbox.height];
            }));
            const steady = window.__plot_layout === layout;
            window.__plot_layout = layout;
            return steady;
        }""" % _PLOT_VIEWS,
        timeout=timeout, polling=100,
    )


def page_point(page, x: float, y: float) -> tuple[float, float]:
    """Where the data point ``(x, y)`` of the page's first plot is on the page, in pixels (from
    the plot's own scales, after :func:`wait_for_plot`)."""
    px, py = page.evaluate(
        """([x, y]) => {
            const view = %s[0];
            const r = view.canvas.el.getBoundingClientRect();
            return [r.left + view.frame.x_scale.compute(x), r.top + view.frame.y_scale.compute(y)];
        }""" % _PLOT_VIEWS,
        [float(x), float(y)],
    )
    return float(px), float(py)


def box_select(page, store, start=(0.25, 0.25), end=(0.7, 0.75)) -> bool:
    """Drag a box on the page's map, from ``start`` to ``end`` (shares of the canvas), until the
    store has a selection; True when it has one."""
    for attempt in range(2):  # on a loaded machine the first drag can come before the tools attach
        box = page.locator("canvas").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * start[0], box["y"] + box["height"] * start[1])
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * end[0], box["y"] + box["height"] * end[1], steps=10)
        page.mouse.up()
        if wait_until(lambda: len(store.selection) > 0, timeout=10 if attempt == 0 else 20):
            return True
    return False


def selection_table(page):
    """The selection table (the one with an outlier score column)."""
    return page.locator(".tabulator:has(.tabulator-col[tabulator-field='outlier_score'])")


def label_summary(page):
    """The label summary, in its tab (opened here)."""
    page.locator(".bk-tab", has_text="Labels").click()
    summary = page.locator(".tabulator:has(.tabulator-col[tabulator-field='mean_probability'])")
    summary.wait_for(timeout=30_000)
    return summary


def open_section(page, title: str) -> None:
    """Open the sidebar section ``title`` (Explore, Download, Pipeline)."""
    page.get_by_text(title, exact=True).first.click()


def images_settled(page, timeout: float = 30_000) -> None:
    """Wait until every eagerly loaded ``<img>`` on the page (shadow roots included) has loaded
    or failed, so that any ``onerror`` handler has had its chance to run (``timeout`` ms at most)."""
    page.locator("img").evaluate_all(
        """(imgs, timeout) => Promise.race([
            Promise.all(imgs.filter(i => i.loading !== 'lazy').map(i => i.decode().catch(() => null))),
            new Promise(resolve => setTimeout(resolve, timeout)),
        ])""",
        timeout,
    )


def in_session(doc, fn, timeout: float = 30.0):
    """Run ``fn()`` on the event loop of the session whose document is ``doc``; return its value."""
    done, out = threading.Event(), {}

    def call():
        try:
            out["value"] = fn()
        except BaseException as exc:  # handed to the test thread
            out["error"] = exc
        finally:
            done.set()

    doc.add_next_tick_callback(call)
    assert done.wait(timeout), "the session never ran the callback"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


# ---- the hostile corpus ----------------------------------------------------------------------------

HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"

ODD_NAMES = [
    "with space.jpg",
    "ünïcödé — 日本語.png",
    "emoji 🐱🚀.gif",
    "new\nline.jpg",
    "quotes \"double\" 'single'.jpg",
    HOSTILE_NAME,
    "back\\slash.jpg",
    "tab\there.jpg",
    "%s %n {0} $(rm -rf).webp",
    "a" * 246 + ".jpg",  # 250 bytes
]


# How each EXIF orientation stores the upright picture (the inverse of what a viewer applies),
# written independently of bulk_panel's own table.
STORED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored horizontally
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1, :],  # mirrored vertically
    5: lambda a: a.transpose(1, 0, 2),  # row 0 is the visual left side, column 0 the top
    6: lambda a: np.rot90(a, 1),  # row 0 is the visual right side: viewer rotates 90 CW
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],  # row 0 right side, column 0 bottom
    8: lambda a: np.rot90(a, -1),  # row 0 is the visual left side, column 0 the bottom
}

_FORMATS = {".jpg": ("JPEG", {"quality": 92}), ".png": ("PNG", {}), ".gif": ("GIF", {}), ".webp": ("WEBP", {})}

def encode(im: Image.Image, fmt: str, **kwargs) -> bytes:
    """``im`` saved as ``fmt`` into bytes."""
    buffer = io.BytesIO()
    im.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def upright_array(width: int = 48, height: int = 32) -> np.ndarray:
    """A smooth image that looks different under every flip and rotation."""
    y, x = np.mgrid[0:height, 0:width]
    arr = np.zeros((height, width, 3), np.uint8)
    arr[..., 0] = 40 + 180 * x // (width - 1)  # red grows to the right
    arr[..., 1] = 40 + 180 * y // (height - 1)  # green grows downwards
    arr[: height // 2, : width // 3, 2] = 230  # a blue block in the top-left corner
    return arr


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes) -> bytes:
    """A PNG made by hand: signature, IHDR, one IDAT holding ``raw`` (already filtered), IEND."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def png16_rgb(arr: np.ndarray) -> bytes:
    """A 16-bit RGB PNG of an 8-bit ``arr`` (each sample × 257, so it scales back exactly)."""
    h, w, _ = arr.shape
    rows = (arr.astype(">u2") * 257).reshape(h, w * 3)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    return png_bytes(w, h, 16, 2, raw)


def drawing(category: str = "animals", index: int = 3) -> Image.Image:
    """A demo drawing flattened onto white (RGB)."""
    rgba = Image.open(sorted((DEMO / category).glob("*.png"))[index]).convert("RGBA")
    flat = Image.new("RGB", rgba.size, "white")
    flat.paste(rgba, mask=rgba.split()[3])
    return flat


@dataclass
class Corpus:
    """What :func:`write_corpus` wrote: which files must be used, which reported, which pairs embed alike."""

    root: Path
    good: list[str] = field(default_factory=list)
    bad: dict[str, str] = field(default_factory=dict)  # path -> reason prefix ('/'-ended for folders)
    twins: dict[str, str] = field(default_factory=dict)  # variant -> its plain twin (both good)
    duplicates: list[tuple[str, str]] = field(default_factory=list)


def write_corpus(root: Path, large_side: int = 6000) -> Corpus:
    """Write every hostile case listed in this module's docstring into ``root`` (made fresh) and
    return its manifest.

    ``root`` gets a sibling ``<root>-outside`` folder that the escaping symlinks point into.
    """
    root = Path(root)
    outside = root.with_name(root.name + "-outside")
    root.mkdir(parents=True)
    outside.mkdir()
    corpus = Corpus(root=root)

    def good(rel: str, data: bytes) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        corpus.good.append(rel)

    def bad(rel: str, reason: str, data: bytes | None = None) -> None:
        if data is not None:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        corpus.bad[rel] = reason

    # the normalised twins and their awkward variants
    base = drawing("animals", 3)
    arr = np.asarray(base)
    good("plain/upright.png", encode(base, "PNG"))
    good("plain/upright.jpg", encode(base, "JPEG", quality=95))
    for k, store in STORED.items():
        exif = Image.Exif()
        exif[0x0112] = k
        good(f"orientation/{k}.png", encode(Image.fromarray(np.ascontiguousarray(store(arr))), "PNG", exif=exif))
        corpus.twins[f"orientation/{k}.png"] = "plain/upright.png"
    good("modes/cmyk.jpg", encode(base.convert("CMYK"), "JPEG", quality=95))
    corpus.twins["modes/cmyk.jpg"] = "plain/upright.jpg"  # the same JPEG loss, in RGB
    good("modes/16bit.png", png16_rgb(arr))
    corpus.twins["modes/16bit.png"] = "plain/upright.png"

    # other modes and formats
    other = drawing("food", 2)
    palette = other.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    good("modes/palette-transparent.png", encode(palette, "PNG", transparency=0))
    good("modes/la.png", encode(drawing("people", 1).convert("LA"), "PNG"))
    frames = [drawing("plants", 1), drawing("plants", 2).resize(drawing("plants", 1).size)]
    good("modes/animated.gif", encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=80))
    big = drawing("buildings", 1)
    big = big.resize((large_side, large_side * big.height // big.width), Image.Resampling.BICUBIC)
    good("large/very-large.jpg", encode(big, "JPEG", quality=85))

    # awkward file names, each its own picture, saved in the format its extension says
    categories = sorted(p.name for p in DEMO.iterdir() if p.is_dir())
    for i, name in enumerate(ODD_NAMES):
        fmt, options = _FORMATS[Path(name).suffix]
        picture = drawing(categories[i % len(categories)], 5 + i // len(categories))
        good(f"names/{name}", encode(picture, fmt, **options))

    # exact duplicates
    twin_bytes = encode(drawing("transportation", 4), "PNG")
    good("dup/first.png", twin_bytes)
    good("dup/same bytes.png", twin_bytes)
    corpus.duplicates.append(("dup/first.png", "dup/same bytes.png"))

    # files that must be reported, not used
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    jpeg, png = encode(noise, "JPEG"), encode(noise, "PNG")
    bad("bad/empty.jpg", "empty file", b"")
    bad("bad/truncated.jpg", "truncated image data", jpeg[: len(jpeg) // 2])
    bad("bad/truncated.png", "truncated image data", png[: len(png) // 2])
    bad("bad/text.jpg", "not an image", b"hello, I am a text file\n")
    bad("bad/<script>alert(3)</script>.png", "not an image", b"<html><body><script>alert(3)</script></body></html>\n")
    bad("bad/huge.png", "too large", png_bytes(100_000, 100_000, 8, 2, b"\x00" * 16))

    # links: out of the folder, loops
    (outside / "secret.png").write_bytes(encode(drawing("animals", 0), "PNG"))
    os.symlink(outside / "secret.png", root / "escape.png")
    bad("escape.png", "symlink points outside the folder")
    os.symlink(outside, root / "escape-dir")
    bad("escape-dir/", "symlink points outside the folder")
    os.symlink("..", root / "plain" / "up")
    bad("plain/up/", "symlink loop")
    os.symlink("loop2.jpg", root / "loop1.jpg")
    os.symlink("loop1.jpg", root / "loop2.jpg")
    bad("loop1.jpg", "broken symlink")
    bad("loop2.jpg", "broken symlink")

    if not IS_ROOT:  # root reads anything
        bad("bad/unreadable.png", "permission denied", png)
        (root / "bad/unreadable.png").chmod(0)
    return corpus

