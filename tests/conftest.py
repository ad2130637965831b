"""Shared fixtures: small folders of real images, a private cache, the real offline model."""
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no 60-second hub retries in tests
# PyTorch unless a test asks for ONNX (tests/test_onnx.py runs the ONNX path, the CPU default,
# for real): every process, CLI subprocesses included, would otherwise pay a one-off export
os.environ.setdefault("BULK_PANEL_BACKEND", "torch")

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "bulk_panel" / "demo"


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
    from PIL import Image, ImageEnhance, ImageOps

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


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """24 real images (3 demo categories × 8) in a fresh folder."""
    return demo_subset(tmp_path / "images")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A private cache folder, also set as $BULK_PANEL_CACHE for subprocesses."""
    path = tmp_path / "cache"
    monkeypatch.setenv("BULK_PANEL_CACHE", str(path))
    return path


@pytest.fixture(scope="session")
def embedder():
    """The real offline model (tf_efficientnet_lite0 with packaged ImageNet weights), loaded once."""
    from bulk_panel.compute.embed import Embedder

    e = Embedder(workers=0, batch_size=16)
    e.loaded()
    return e
