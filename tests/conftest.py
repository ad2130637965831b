"""Shared fixtures: small folders of real images, a private cache, the real offline model.
Shared functions and constants live in ``helpers.py``."""
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no 60-second hub retries in tests
# PyTorch unless a test asks for ONNX (tests/test_onnx.py runs the ONNX path, the CPU default,
# for real): every process, CLI subprocesses included, would otherwise pay a one-off export
os.environ.setdefault("BULK_PANEL_BACKEND", "torch")

from helpers import demo_subset  # noqa: E402  (after the environment above)


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
