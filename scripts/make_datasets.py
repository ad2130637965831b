#!/usr/bin/env python
"""Build image-folder datasets for bulk_panel from Debian packages.

Subcommands
-----------
demo           small bundled demo set (``bulk_panel/demo``) from ``openclipart-png``
fashion-mnist  Fashion-MNIST PNGs (``DIR/<class>/<index>.png``) from ``dataset-fashion-mnist``
openclipart    openclipart categories as folders (first-level category = label)

The Debian packages are fetched with ``apt-get download`` into a temporary
directory unless ``--deb PATH`` points at an already downloaded ``.deb``.
Only Pillow, numpy and the standard library are used. Output is deterministic:
inputs are walked in sorted order and nothing is random.

Examples::

    python scripts/make_datasets.py demo --out bulk_panel/demo
    python scripts/make_datasets.py fashion-mnist --out data/fmnist --n 10000
    python scripts/make_datasets.py openclipart --out data/openclipart --per-category 200
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Some openclipart PNGs are enormous (up to ~25000 px on a side, >600 Mpx) and
# trip Pillow's decompression-bomb guard. We check the header size ourselves and
# skip anything above this many pixels, so the guard is raised to match it.
MAX_SOURCE_PIXELS = 64_000_000  # 8000 x 8000
Image.MAX_IMAGE_PIXELS = MAX_SOURCE_PIXELS

OPENCLIPART_PKG = "openclipart-png"
OPENCLIPART_ROOT = "usr/share/openclipart/png"
FASHION_PKG = "dataset-fashion-mnist"
FASHION_ROOT = "usr/share/datasets/fashion-mnist"
FASHION_CLASSES = [
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
]

DEMO_CATEGORIES = ["animals", "buildings", "food", "people", "plants", "transportation"]
DEMO_PER_CATEGORY = 50
DEMO_MAX_SIDE = 192
DEMO_MAX_TOTAL_BYTES = 6 * 1024 * 1024
# Demo PNGs larger than this get palette-quantised (with alpha) if that is smaller.
DEMO_QUANTIZE_ABOVE = 12_000

# openclipart-png renders whose SVG referenced a missing linked bitmap: the PNG
# shows a big "Linked Image Not Found" placeholder. Found by scanning the
# package (red/white placeholder colours) and checking by eye; matched by
# file name in any category.
OPENCLIPART_BROKEN = {
    "duck_yellow_ii_kurt_cagl_.png",
    "tux_didier_fabert_01.png",
    "stylized_yoga_person_ger_01.png",
    "stylized_yoga_person_ger_02.png",
    "stylized_yoga_person_ger_03.png",
    "stylized_yoga_person_ger_04.png",
    "stylized_yoga_person_ger_05.png",
    "stylized_yoga_person_ger_06.png",
    "creation_day_7_number_ge_01.png",
    "creation_day_7_number_ge_04.png",
}

_SAFE_NAME = re.compile(r"^[a-z0-9_-]+$")


# --------------------------------------------------------------------------- #
# Debian package handling
# --------------------------------------------------------------------------- #
def _ar_members(deb: Path):
    """Yield (name, bytes) for the members of a Debian ``ar`` archive."""
    with open(deb, "rb") as fh:
        if fh.read(8) != b"!<arch>\n":
            raise ValueError(f"{deb} is not an ar archive")
        while True:
            header = fh.read(60)
            if len(header) < 60:
                return
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            data = fh.read(size)
            if size % 2:
                fh.read(1)
            yield name, data


def _deb_tar(deb: Path, prefix: str) -> tarfile.TarFile:
    for name, data in _ar_members(deb):
        if name.startswith(prefix):
            if name.endswith(".zst"):
                raise RuntimeError(f"{deb}: zstd-compressed {name}; install dpkg-deb")
            return tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
    raise ValueError(f"{deb}: no {prefix}* member")


def deb_extract(deb: Path, dest: Path) -> None:
    """Extract a .deb's data into ``dest`` (``dpkg-deb -x`` or a pure-Python fallback)."""
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg-deb"):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], check=True)
        return
    with _deb_tar(deb, "data.tar") as tf:
        if hasattr(tarfile, "tar_filter"):  # Python >= 3.11.4 / 3.12
            tf.extractall(dest, filter="tar")
        else:
            tf.extractall(dest)


def deb_field(deb: Path, name: str) -> str:
    """Return one control field (e.g. ``Version``) of a .deb."""
    if shutil.which("dpkg-deb"):
        out = subprocess.run(
            ["dpkg-deb", "-f", str(deb), name], check=True, capture_output=True, text=True
        )
        return out.stdout.strip()
    with _deb_tar(deb, "control.tar") as tf:
        for member in tf.getmembers():
            if member.name.lstrip("./") == "control":
                text = tf.extractfile(member).read().decode()
                for line in text.splitlines():
                    if line.lower().startswith(name.lower() + ":"):
                        return line.split(":", 1)[1].strip()
    return ""


def fetch_deb(package: str, deb: str | None, workdir: Path) -> Path:
    """Return a path to ``package``'s .deb, downloading it with apt-get if needed."""
    if deb:
        path = Path(deb)
        if not path.is_file():
            raise SystemExit(f"--deb {deb}: no such file")
        return path
    if not shutil.which("apt-get"):
        raise SystemExit(f"apt-get not found; download {package} yourself and pass --deb PATH")
    proc = subprocess.run(
        ["apt-get", "download", package], cwd=workdir, capture_output=True, text=True
    )
    debs = sorted(workdir.glob(f"{package}_*.deb"))
    if proc.returncode != 0 or not debs:
        raise SystemExit(
            f"apt-get download {package} failed (rc={proc.returncode}):\n{proc.stderr.strip()}"
        )
    return debs[0]


def extract_package(package: str, deb_arg: str | None, workdir: Path) -> tuple[Path, Path]:
    """Fetch and unpack ``package``; return (.deb path, extraction root)."""
    deb = fetch_deb(package, deb_arg, workdir)
    root = workdir / "root"
    deb_extract(deb, root)
    return deb, root


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #
def safe_stem(stem: str) -> str:
    """Lowercase ASCII ``[a-z0-9_-]`` version of a file stem (kept if already safe)."""
    if _SAFE_NAME.match(stem):
        return stem
    s = stem.encode("ascii", "ignore").decode().lower()
    s = re.sub(r"[^a-z0-9_-]+", "_", s).strip("_-")
    return s or "img"


def unique_name(stem: str, used: set[str], suffix: str = ".png") -> str:
    name = stem + suffix
    i = 2
    while name in used:
        name = f"{stem}-{i}{suffix}"
        i += 1
    used.add(name)
    return name


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise SystemExit(f"{out} exists and is not empty (use --force to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def spread_order(n_items: int, n_pick: int) -> list[int]:
    """Indices ``0..n_items-1``: ``n_pick`` evenly spaced ones first, then the rest.

    Taking the first successful ``n_pick`` of this order gives a deterministic
    sample spread over the whole (sorted) list, with fallbacks if some fail.
    """
    if n_pick >= n_items:
        return list(range(n_items))
    first = [int(i * n_items / n_pick) for i in range(n_pick)]
    chosen = set(first)
    return first + [i for i in range(n_items) if i not in chosen]


# --------------------------------------------------------------------------- #
# openclipart
# --------------------------------------------------------------------------- #
@dataclass
class Skips:
    symlink: int = 0
    duplicate: int = 0
    broken: int = 0
    huge: int = 0
    unreadable: int = 0
    examples: list = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"skipped {self.huge} huge (> {MAX_SOURCE_PIXELS:,} px), "
            f"{self.unreadable} unreadable, {self.broken} known-broken, "
            f"{self.symlink} symlinks, {self.duplicate} duplicates"
        )


def openclipart_candidates(root: Path, category: str, seen: set[str], skips: Skips) -> list[Path]:
    """Sorted regular PNG files of one category (symlinks and byte-duplicates dropped)."""
    out = []
    for path in sorted((root / category).rglob("*")):
        if path.suffix.lower() != ".png":
            continue
        if path.is_symlink():  # ~1200 symlinks, often to other categories
            skips.symlink += 1
            continue
        if not path.is_file():
            continue
        if path.name in OPENCLIPART_BROKEN:
            skips.broken += 1
            continue
        digest = hashlib.sha1(path.read_bytes()).hexdigest()
        if digest in seen:
            skips.duplicate += 1
            continue
        seen.add(digest)
        out.append(path)
    return out


def load_downscaled(path: Path, max_side: int) -> tuple[Image.Image | None, str, str]:
    """Open ``path`` and shrink so its longest side is <= ``max_side``.

    Keeps an alpha channel where present (palette transparency becomes RGBA).
    Returns ``(image, "ok", "")`` or ``(None, "huge" | "unreadable", reason)``.
    """
    try:
        with warnings.catch_warnings():
            # Between MAX_IMAGE_PIXELS and twice that Pillow only warns; make it an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_SOURCE_PIXELS:
                    return None, "huge", f"{w}x{h}"
                im.load()
                if im.mode in ("P", "PA"):
                    has_alpha = im.mode == "PA" or "transparency" in im.info
                    im = im.convert("RGBA" if has_alpha else "RGB")
                elif im.mode in ("1", "I", "I;16", "F"):
                    im = im.convert("L")
                elif im.mode not in ("L", "LA", "RGB", "RGBA"):
                    im = im.convert("RGBA")
                else:
                    im = im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Raised by Image.open from the header size alone, before decoding.
        return None, "huge", str(exc).split(",")[0]
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return None, "unreadable", f"{type(exc).__name__}: {exc}"
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return im, "ok", ""


def png_bytes(im: Image.Image, optimize: bool, quantize_above: int | None = None) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=optimize)
    data = buf.getvalue()
    if quantize_above is not None and len(data) > quantize_above and im.mode in ("RGB", "RGBA"):
        # FASTOCTREE handles RGBA and keeps per-entry alpha (saved as tRNS).
        q = im.quantize(colors=256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        qbuf = io.BytesIO()
        q.save(qbuf, format="PNG", optimize=optimize)
        if len(qbuf.getvalue()) < len(data):
            data = qbuf.getvalue()
    return data


def _convert_one(job: tuple[Path, int, bool, int | None]) -> tuple[str, bytes | str]:
    """Worker: ``("ok", png bytes)`` or ``("huge" | "unreadable", reason)``."""
    path, max_side, optimize, quantize_above = job
    im, status, reason = load_downscaled(path, max_side)
    if im is None:
        return status, reason
    return "ok", png_bytes(im, optimize, quantize_above)


def write_openclipart(
    root: Path,
    out: Path,
    categories: list[str],
    per_category: int | None,
    max_side: int,
    optimize: bool,
    quantize_above: int | None,
    jobs: int = 1,
) -> tuple[dict[str, int], Skips]:
    """Write ``out/<category>/<name>.png``; returns per-category counts and skips.

    Work is spread over ``jobs`` processes; results are consumed in input order
    so the output does not depend on ``jobs``.
    """
    skips = Skips()
    seen: set[str] = set()
    counts: dict[str, int] = {}
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    mapper = (lambda fn, it: pool.map(fn, it, chunksize=4)) if pool else map
    try:
        for cat in categories:
            cands = openclipart_candidates(root, cat, seen, skips)
            n_pick = len(cands) if per_category is None else min(per_category, len(cands))
            order = spread_order(len(cands), n_pick)
            written: list[tuple[Path, bytes]] = []
            pos = 0
            # Convert the evenly spread picks; replace failures with the next ones in order.
            while len(written) < n_pick and pos < len(order):
                batch = order[pos: pos + n_pick - len(written)]
                pos += len(batch)
                jobs_ = [(cands[i], max_side, optimize, quantize_above) for i in batch]
                for (path, *_), (status, payload) in zip(jobs_, mapper(_convert_one, jobs_)):
                    if status == "ok":
                        written.append((path, payload))
                    else:
                        setattr(skips, status, getattr(skips, status) + 1)
                        skips.examples.append(f"{status} ({payload}): {path.relative_to(root)}")
            if not written:
                continue
            (out / cat).mkdir(parents=True, exist_ok=True)
            used: set[str] = set()
            # Name in sorted source-path order so name clashes resolve the same way every run.
            for path, data in sorted(written, key=lambda t: t[0]):
                (out / cat / unique_name(safe_stem(path.stem), used)).write_bytes(data)
            counts[cat] = len(written)
    finally:
        if pool:
            pool.shutdown()
    return counts, skips


def openclipart_categories(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink())


def cmd_openclipart(args: argparse.Namespace) -> str:
    out = Path(args.out)
    prepare_out(out, args.force)
    with tempfile.TemporaryDirectory(prefix="openclipart-") as tmp:
        deb, root = extract_package(OPENCLIPART_PKG, args.deb, Path(tmp))
        src = root / OPENCLIPART_ROOT
        cats = openclipart_categories(src)
        if args.categories:
            wanted = [c.strip() for c in args.categories.split(",") if c.strip()]
            missing = sorted(set(wanted) - set(cats))
            if missing:
                raise SystemExit(f"unknown categories {missing}; available: {cats}")
            cats = wanted
        counts, skips = write_openclipart(
            src, out, cats, args.per_category, args.max_side,
            optimize=args.optimize, quantize_above=None, jobs=args.jobs,
        )
    n = sum(counts.values())
    if args.verbose:
        for line in skips.examples:
            print("  " + line, file=sys.stderr)
    return (
        f"openclipart: wrote {n} files in {len(counts)} classes, {dir_bytes(out):,} bytes "
        f"to {out} ({skips.describe()})"
    )


# --------------------------------------------------------------------------- #
# demo
# --------------------------------------------------------------------------- #
CREDITS_TEMPLATE = """\
# Demo images — credits

The images in this folder are small copies of public-domain clip art from
[Openclipart](https://openclipart.org/), taken from the Debian package
**`{package}`** version **`{version}`** (`apt-get download {package}`;
upstream Openclipart {upstream}). The package's `copyright` file
(`/usr/share/doc/{package}/copyright`) states that the clip art is released
under the Creative Commons **Public Domain Dedication** (Copyright-Only
Dedication / Public Domain Certification); Openclipart now publishes all of
its clip art as public domain under CC0 1.0 (<https://openclipart.org/share>).
No attribution is required; authors are often part of the original file
names (kept here where they were already safe).

## Contents

One folder per Openclipart category (the first-level folder in
`/usr/share/openclipart/png/`); the folder name is the ground-truth label.

| category | images |
|---|---|
{table}
| **total** | **{total}** |

## How they were made

Generated by `scripts/make_datasets.py demo --out bulk_panel/demo` (rerun it to
regenerate; the output is deterministic):

- per category, the regular PNG files under the category folder (recursively,
  sorted by path; symlinks, byte-identical duplicates and a few known
  "Linked Image Not Found" placeholder renders dropped) are sampled
  at {per_category} evenly spaced positions; files that fail to open or have
  more than {max_pixels:,} pixels are skipped and replaced by the next ones;
- each image is downscaled (Lanczos) so its longest side is at most
  {max_side} px; the alpha channel is kept where present (palette
  transparency becomes RGBA);
- saved as optimised PNG; files over {quant:,} bytes are quantised to a
  256-colour palette (with per-colour alpha) when that is smaller;
- file names are the original stems, made lowercase ASCII `[a-z0-9_-]`
  where needed (`-2` etc. appended on a clash).
"""


def cmd_demo(args: argparse.Namespace) -> str:
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="demo-") as tmp:
        # Build into a scratch folder so a failed run leaves --out untouched.
        stage = Path(tmp) / "demo"
        stage.mkdir()
        deb, root = extract_package(OPENCLIPART_PKG, args.deb, Path(tmp))
        version = deb_field(deb, "Version")
        counts, skips = write_openclipart(
            root / OPENCLIPART_ROOT,
            stage,
            DEMO_CATEGORIES,
            args.per_category,
            DEMO_MAX_SIDE,
            optimize=True,
            quantize_above=DEMO_QUANTIZE_ABOVE,
            jobs=args.jobs,
        )
        _write_credits(stage, counts, version, args.per_category)
        total = dir_bytes(stage)
        if total > DEMO_MAX_TOTAL_BYTES:
            raise SystemExit(f"demo is {total:,} bytes, over the {DEMO_MAX_TOTAL_BYTES:,} limit")
        if out.exists():
            shutil.rmtree(out)  # the demo folder is always regenerated in full
        shutil.copytree(stage, out)
    n = sum(counts.values())
    return (
        f"demo: wrote {n} files in {len(counts)} classes, {total:,} bytes to {out} "
        f"({skips.describe()})"
    )


def _write_credits(out: Path, counts: dict[str, int], version: str, per_category: int) -> None:
    upstream = re.sub(r"^\d+:", "", version).split("+")[0].split("-")[0]
    table = "\n".join(f"| {c} | {n} |" for c, n in counts.items())
    credits = CREDITS_TEMPLATE.format(
        package=OPENCLIPART_PKG,
        version=version,
        upstream=upstream,
        table=table,
        total=sum(counts.values()),
        per_category=per_category,
        max_pixels=MAX_SOURCE_PIXELS,
        max_side=DEMO_MAX_SIDE,
        quant=DEMO_QUANTIZE_ABOVE,
    )
    (out / "CREDITS.md").write_text(credits, encoding="utf-8")


# --------------------------------------------------------------------------- #
# Fashion-MNIST
# --------------------------------------------------------------------------- #
def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def balanced_indices(labels: np.ndarray, n: int, n_classes: int) -> list[int]:
    """First-N per class, round robin: classes get n // k (first n % k get one more)."""
    per_class = [n // n_classes + (1 if c < n % n_classes else 0) for c in range(n_classes)]
    picked: list[int] = []
    for c in range(n_classes):
        idx = np.flatnonzero(labels == c)[: per_class[c]]
        picked.extend(int(i) for i in idx)
    return sorted(picked)


def cmd_fashion_mnist(args: argparse.Namespace) -> str:
    out = Path(args.out)
    prepare_out(out, args.force)
    prefix = "train" if args.split == "train" else "t10k"
    with tempfile.TemporaryDirectory(prefix="fmnist-") as tmp:
        _, root = extract_package(FASHION_PKG, args.deb, Path(tmp))
        src = root / FASHION_ROOT
        images = read_idx(src / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(src / f"{prefix}-labels-idx1-ubyte.gz")
    if len(images) != len(labels):
        raise SystemExit("image/label count mismatch")
    n = min(args.n, len(images))
    if args.first:
        picked = list(range(n))
    else:
        picked = balanced_indices(labels, n, len(FASHION_CLASSES))
    width = max(5, len(str(len(images) - 1)))
    classes = set()
    for i in picked:
        cls = FASHION_CLASSES[int(labels[i])]
        classes.add(cls)
        d = out / cls
        d.mkdir(exist_ok=True)
        Image.fromarray(images[i], mode="L").save(d / f"{i:0{width}d}.png", optimize=True)
    return (
        f"fashion-mnist: wrote {len(picked)} files in {len(classes)} classes, "
        f"{dir_bytes(out):,} bytes to {out} ({args.split} split)"
    )


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #
def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Build image-folder datasets for bulk_panel from Debian packages.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("Examples::", 1)[1],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")

    p = sub.add_parser("demo", help=f"bundled demo images from {OPENCLIPART_PKG}")
    p.add_argument("--out", default="bulk_panel/demo", help="output folder (replaced; default: %(default)s)")
    p.add_argument("--deb", help=f"path to an {OPENCLIPART_PKG} .deb (default: apt-get download it)")
    p.add_argument("--per-category", type=positive_int, default=DEMO_PER_CATEGORY,
                   help="images per category (default: %(default)s)")
    p.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                   help="worker processes (default: %(default)s); output does not depend on it")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("fashion-mnist", help=f"Fashion-MNIST PNGs from {FASHION_PKG}")
    p.add_argument("--out", required=True, help="output folder (DIR/<class>/<index>.png)")
    p.add_argument("--n", type=positive_int, default=10000, help="number of images (default: %(default)s)")
    p.add_argument("--split", choices=["train", "test"], default="train", help="default: %(default)s")
    p.add_argument("--first", action="store_true",
                   help="take the first N images instead of a class-balanced first-N-per-class")
    p.add_argument("--deb", help=f"path to a {FASHION_PKG} .deb (default: apt-get download it)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=cmd_fashion_mnist)

    p = sub.add_parser("openclipart", help=f"openclipart categories as folders from {OPENCLIPART_PKG}")
    p.add_argument("--out", required=True, help="output folder (DIR/<category>/<name>.png)")
    p.add_argument("--per-category", type=positive_int, default=None,
                   help="max images per category, evenly spread over the sorted files (default: all)")
    p.add_argument("--max-side", type=positive_int, default=512, help="default: %(default)s")
    p.add_argument("--categories", help="comma-separated subset of categories (default: all)")
    p.add_argument("--deb", help=f"path to an {OPENCLIPART_PKG} .deb (default: apt-get download it)")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.add_argument("--optimize", action="store_true",
                   help="PNG optimize=True (~2-3%% smaller, ~4x slower to write)")
    p.add_argument("--jobs", type=positive_int, default=os.cpu_count() or 1,
                   help="worker processes (default: %(default)s); output does not depend on it")
    p.add_argument("-v", "--verbose", action="store_true", help="list skipped files on stderr")
    p.set_defaults(func=cmd_openclipart)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    t0 = time.perf_counter()
    summary = args.func(args)
    print(f"{summary} in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
