"""``bulk-panel share``: results as a static page that runs in the browser (``panel convert``).

    bulk-panel share results.parquet -o site/
    python -m http.server -d site/          # or any static host; open /index.html

The page is :mod:`bulk_panel.share.app` (the dashboard's own state and views) converted with
``panel convert --to pyodide-worker``. What travels with it, in ``site/index.resources.zip``:
the points and labels (``bulk_panel_data/points.csv.gz``; at most ``max_points`` rows, a
seeded random sample above that), small JPEG thumbnails (``thumbnails.zip``) and a wheel of
bulk_panel without dependencies. When opened, the page fetches Pyodide and the
panel/bokeh wheels from public CDNs and the other packages through micropip.

>>> build_site("results.parquet", "site")            # {'rows_shown': 300, 'thumbnails': 300, ...}
>>> write_bundle(results, "bulk_panel_data")          # only the data, for a page already built
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import numpy as np

from .. import __version__
from ..compute.names import read_suggestions, suggestions_meta
from ..compute.results import Results, load_results
from ..compute.schema import RECORD_COLUMNS
from ..compute.thumbs import ThumbnailCache
from .bundle import (BUNDLE_DIR, BUNDLE_FORMAT, BUNDLE_VERSION, META_FILE, POINTS_FILE, SOURCE_COLUMNS, THUMBS_FILE,
                     describe)
from .notice import ShareError, add_offline_notice

# no Panel here: the page (bulk_panel.share.app) runs in panel convert's process, so that
# `bulk-panel --help` and the other subcommands stay quick to start

__all__ = ["MAX_POINTS", "add_parser", "build_site", "prepare_sources", "write_bundle", "write_wheel"]

MAX_POINTS = 20_000  # the page draws plain points only (no datashader in a browser): a cap keeps it quick
SHARE_THUMB_SIZE = 96
APP_NAME = "index"  # the page is index.html
APP_SCRIPT = '''"""The shared bulk_panel page (written by `bulk-panel share`)."""
from bulk_panel.share.app import servable_page

servable_page()
'''
# what the page installs besides panel and bokeh (which panel convert adds from its CDN);
# no pyarrow (the points are CSV), no scipy (nearest-point falls back to numpy)
PAGE_REQUIREMENTS = ["numpy", "pandas", "param", "pillow"]
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed entry times: the same results give the same files


def _sample_rows(n: int, max_points: int, seed: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def write_bundle(
    results: Results, folder: str | Path, *, max_points: int = MAX_POINTS, thumb_size: int = SHARE_THUMB_SIZE,
    seed: int = 0, cache_dir: Optional[str | Path] = None, source: Optional[str] = None,
) -> dict:
    """Write the page's data into ``folder``; returns its meta (counts, sample, thumbnails).

    Above ``max_points`` rows, a random sample of ``max_points`` (``seed``) is shared. The
    thumbnails (``thumb_size`` px, 0 for none) come from the images under the results'
    image folder through the thumbnail cache; images that cannot be read get none. Only
    relative paths are shared, never the image folder.

    >>> write_bundle(load_results("results.parquet"), "bulk_panel_data", max_points=5_000)
    """
    if max_points < 1:
        raise ShareError(f"max points must be at least 1, not {max_points}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    total = len(results.frame)
    # the sampled rows only (a lazy results folder reads their paths and hashes, nothing more)
    columns = RECORD_COLUMNS + [c for c in SOURCE_COLUMNS if c in results.columns]  # whose labels, how sure
    frame = results.take(_sample_rows(total, max_points, seed), columns).reset_index(drop=True)
    frame.to_csv(folder / POINTS_FILE, index=False, compression={"method": "gzip", "mtime": 0})
    made = 0
    with zipfile.ZipFile(folder / THUMBS_FILE, "w", compression=zipfile.ZIP_STORED) as zf:
        if thumb_size > 0 and results.image_root is not None:
            thumbs = ThumbnailCache(cache_dir)
            thumbs.register(results.image_root, frame)
            digests = frame["content_hash"].drop_duplicates().tolist()
            with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # decoding frees the GIL
                jpegs = pool.map(lambda digest: thumbs.get(digest, thumb_size), digests)
                for digest, jpeg in zip(digests, _progress(jpegs, len(digests), "thumbnails")):
                    if jpeg is None:
                        continue
                    zf.writestr(zipfile.ZipInfo(f"{digest}.jpg", _ZIP_TIME), jpeg)
                    made += 1
    meta = {
        "format": BUNDLE_FORMAT, "version": BUNDLE_VERSION,
        "source": source or (results.path.name if results.path is not None else "results"),
        "rows_total": total, "rows_shown": len(frame), "sample_seed": seed if len(frame) < total else None,
        "thumb_size": thumb_size, "thumbnails": made, "model": results.meta.get("model"),
        # the clusters' suggested names, shown beside their labels (the page has no model)
        "suggestions": suggestions_meta(read_suggestions(results.meta)),
    }
    (folder / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


def _progress(items, total: int, desc: str):
    if sys.stderr.isatty() and total > 200:
        from tqdm import tqdm

        return tqdm(items, total=total, desc=desc, unit="img", file=sys.stderr)
    return items


def write_wheel(folder: str | Path) -> Path:
    """A pure-Python wheel of this bulk_panel with no declared dependencies (the page lists the
    few it needs; torch and friends are never imported there); returns its path."""
    package = Path(__file__).resolve().parents[1]  # bulk_panel/
    dist_info = f"bulk_panel-{__version__}.dist-info"
    files = {f"bulk_panel/{p.relative_to(package).as_posix()}": p.read_bytes() for p in sorted(package.rglob("*.py"))}
    files[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: bulk_panel\nVersion: {__version__}\n"
        "Summary: bulk_panel for a shared static page (no pipeline dependencies)\n"
    ).encode()
    files[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: bulk_panel.share\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = Path(folder) / f"bulk_panel-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, _ZIP_TIME), data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def _requirements() -> list[str]:
    import holoviews

    return [f"holoviews=={holoviews.__version__}", *PAGE_REQUIREMENTS]


def prepare_sources(results: Results, folder: str | Path, **bundle) -> tuple[Path, dict]:
    """Write what ``panel convert`` turns into the page into ``folder``: the app script
    (``index.py``), the bundle, the wheel and ``requirements.txt``; returns the script's path
    and the bundle's meta. ``panel serve index.py`` in ``folder`` serves the same page.

    >>> script, meta = prepare_sources(results, "page-src", max_points=5_000)
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = write_bundle(results, folder / BUNDLE_DIR, **bundle)
    wheel = write_wheel(folder)
    (folder / "requirements.txt").write_text("\n".join([f"./{wheel.name}", *_requirements()]) + "\n", encoding="utf-8")
    (folder / f"{APP_NAME}.py").write_text(APP_SCRIPT, encoding="utf-8")
    return folder / f"{APP_NAME}.py", meta


def build_site(
    results: Results | str | Path, out: str | Path, *, timeout: float = 600, **bundle,
) -> dict:
    """Build the static page for ``results`` (a Results or a results file) into ``out``:
    ``index.html``, ``index.js`` (the Pyodide worker) and ``index.resources.zip`` (data and
    wheel). Runs ``panel convert --to pyodide-worker``, which needs no network. Returns the
    bundle's meta with ``files`` (the page's files) added.

    >>> build_site("results.parquet", "site", max_points=5_000)
    """
    if not isinstance(results, Results):
        results = load_results(results, lazy=True)  # a folder: only the shared rows' paths are read
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bulk_panel_share_") as tmp:
        script, meta = prepare_sources(results, tmp, **bundle)
        data = sorted(str(p.relative_to(tmp)) for p in (script.parent / BUNDLE_DIR).iterdir())
        command = [
            sys.executable, "-m", "panel", "convert", script.name, "--to", "pyodide-worker", "--out", str(out),
            "--requirements", "requirements.txt", "--resources", *data, "--disable-http-patch",
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        try:
            done = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ShareError(f"panel convert took more than {timeout:.0f} s") from exc
    files = [out / f"{APP_NAME}.html", out / f"{APP_NAME}.js", out / f"{APP_NAME}.resources.zip"]
    missing = [f.name for f in files if not f.is_file()]
    if done.returncode != 0 or missing or "Failed to convert" in done.stdout:
        lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
        raise ShareError(f"panel convert failed: {lines[-1] if lines else 'no output'}")
    hosts = add_offline_notice(files[0], files[1])
    return {**meta, "files": [str(f) for f in files], "hosts": hosts}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``share`` to the ``bulk-panel`` subcommands (its handler is ``args.handler``)."""
    p = subparsers.add_parser(
        "share",
        help="build a static page of results that opens in a browser with no Python server",
        description="Build a static page (panel convert, Pyodide) of a results file: the map, the hover "
        "thumbnails, selection, labelling and CSV download run in the browser. Host the folder on any "
        "static web server; when opened, the page fetches Pyodide and its packages from public CDNs.",
    )
    p.add_argument("results", help="results file (.parquet)")
    p.add_argument("-o", "--output", default="site", help="folder to write the page into (default: site)")
    p.add_argument("--max-points", type=int, default=MAX_POINTS, metavar="N",
                   help=f"share at most N points, a random sample above that (default: {MAX_POINTS})")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="seed of that sample (default: 0)")
    p.add_argument("--thumb-size", type=int, default=SHARE_THUMB_SIZE, metavar="PX",
                   help=f"thumbnail size in pixels, 0 for none (default: {SHARE_THUMB_SIZE})")
    p.add_argument("--cache-dir", default=None, help="thumbnail cache folder (default: $BULK_PANEL_CACHE or ~/.cache/bulk_panel)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(handler=cmd_share)
    return p


def cmd_share(args: argparse.Namespace) -> int:
    """Build the page; print what it holds. A results file that cannot be read raises
    ResultsError (the CLI prints it); a failed build prints one line and gives 1."""
    results = load_results(args.results, lazy=True)
    try:
        meta = build_site(results, args.output, max_points=args.max_points, seed=args.seed,
                          thumb_size=args.thumb_size, cache_dir=args.cache_dir)
    except ShareError as exc:
        print(f"bulk-panel: error: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(describe(meta))
        print(f"thumbnails       {meta['thumbnails']} ({meta['thumb_size']} px)")
        print(f"page             {Path(args.output) / (APP_NAME + '.html')}")
        print(f"open it with     python -m http.server -d {args.output}  (then http://localhost:8000/)")
        print(f"needs internet   when opened, the page loads Pyodide and its packages from public CDNs "
              f"({', '.join(meta['hosts'])}) and PyPI; where they cannot be reached, it says so")
    return 0
