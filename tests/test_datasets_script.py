"""Tests for scripts/make_datasets.py and the bundled demo assets (bulk_panel/demo)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "make_datasets.py"
DEMO = REPO / "bulk_panel" / "demo"
DEMO_MAX_BYTES = 6 * 1024 * 1024
FASHION_CLASSES = {
    "t-shirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot",
}


def test_script_help():
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for sub in ("demo", "fashion-mnist", "openclipart"):
        assert sub in out


@pytest.mark.skipif(
    shutil.which("apt-get") is None,
    reason="apt-get not available: fashion-mnist needs `apt-get download dataset-fashion-mnist`",
)
def test_fashion_mnist_subcommand(tmp_path):
    out = tmp_path / "fmnist"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "fashion-mnist", "--out", str(out), "--n", "50"],
        capture_output=True, text=True, timeout=600,
    )
    if proc.returncode != 0 and "apt-get download" in proc.stderr + proc.stdout:
        pytest.skip(f"could not download dataset-fashion-mnist: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 50 files" in proc.stdout

    class_dirs = [p for p in out.iterdir() if p.is_dir()]
    assert 1 <= len(class_dirs) <= 10
    assert {p.name for p in class_dirs} <= FASHION_CLASSES
    assert not [p for p in out.iterdir() if p.is_file()]  # only class folders at top level

    pngs = sorted(out.glob("*/*.png"))
    assert len(pngs) == 50
    for png in pngs:
        assert png.stem.isdigit()
        with Image.open(png) as im:
            assert im.size == (28, 28)
            assert im.mode == "L"


def test_demo_assets():
    assert DEMO.is_dir(), "bulk_panel/demo missing: run `python scripts/make_datasets.py demo`"
    assert (DEMO / "CREDITS.md").is_file()

    total = sum(p.stat().st_size for p in DEMO.rglob("*") if p.is_file())
    assert total <= DEMO_MAX_BYTES, f"bulk_panel/demo is {total:,} bytes"

    pngs = sorted(DEMO.glob("*/*.png"))
    assert len(pngs) >= 200
    categories = {p.parent.name for p in pngs}
    assert len(categories) >= 4
    for png in pngs:
        # safe, simple names: lowercase ascii, digits, '-' and '_'
        assert all(c.islower() or c.isdigit() or c in "-_" for c in png.stem), png
        assert png.stem.isascii()
    # spot-check that files are valid, small images
    for png in pngs[::25]:
        with Image.open(png) as im:
            im.load()
            assert max(im.size) <= 192
