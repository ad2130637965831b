"""Shared fixtures: small folders of real images, a private cache, the real offline model."""
import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no 60-second hub retries in tests

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "assets" / "demo"


def demo_subset(dest: Path, categories=("animals", "food", "transportation"), per_category=8) -> Path:
    """Copy the first ``per_category`` demo images of each category into ``dest``."""
    for category in categories:
        (dest / category).mkdir(parents=True, exist_ok=True)
        for src in sorted((DEMO / category).glob("*.png"))[:per_category]:
            shutil.copy2(src, dest / category / src.name)
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
