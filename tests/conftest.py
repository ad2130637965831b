"""Shared fixtures: small folders of real images, a private cache, the real offline model; a
guard that keeps the quick loop (``-m "not slow and not ui"``) quick. Shared functions and
constants live in ``helpers.py``."""
import contextlib
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


# ---- the quick loop stays quick: the real model and UMAP only in tests marked slow ----------------
def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise RuntimeError(f"this test {what} but is not marked slow: add @pytest.mark.slow "
                           "(the quick loop, -m 'not slow and not ui', runs neither)")
    return refuse


@contextlib.contextmanager
def _unless_slow(item):
    """Loading the real model (``Embedder.loaded``, which calls ``embed.models.shared_model``) or
    fitting UMAP (``Projector.fit`` and ``transform``) raises, in this process, for a test not
    marked slow, in its fixtures too. Subprocesses (the CLI) are not watched: time them
    (``--durations``)."""
    if item.get_closest_marker("slow") is not None:
        yield
        return
    from bulk_panel.compute import project
    from bulk_panel.compute.embed import models

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(models, "shared_model", _refuse("loads the real model"))
        patch.setattr(project, "_import_umap", _refuse("fits UMAP"))
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _unless_slow(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _unless_slow(item):
        yield
