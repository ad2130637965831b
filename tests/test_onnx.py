"""The ONNX Runtime backend with the real offline model on real images: equal vectors, one
cached export, fallbacks to PyTorch with their reason, the pipeline and Dask workers."""
import logging
import sys

import numpy as np
import pytest
import torch

from bulk_panel.compute.cache import EmbeddingCache
from bulk_panel.compute.embed import Embedder
from bulk_panel.compute.embed import onnx as embed_onnx
from bulk_panel.compute.images import read_image

from helpers import DEMO


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def batch():
    """12 real demo drawings (4 categories), preprocessed by the model's own transform."""
    files = [f for c in ("animals", "food", "people", "transportation") for f in sorted((DEMO / c).glob("*.png"))[:3]]
    transform = Embedder(workers=0).loaded().transform
    return torch.stack([transform(read_image(f)[0]) for f in files])


@pytest.fixture(scope="module")
def torch_vectors(batch):
    return Embedder(workers=0, backend="torch").embed_tensors(batch)


@pytest.fixture(scope="module")
def exported(batch, tmp_path_factory):
    """A folder holding the export, made here by an ONNX embedder from this batch (not taken
    from an export an earlier test left in this process); (folder, its vectors)."""
    folder = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embed_onnx, "_models", {})
        onnx = Embedder(workers=0, backend="onnx")
        vectors = onnx.embed_tensors(batch, folder=folder)
        assert onnx.engine(batch, folder)[0] == "onnx"
    return folder, vectors


@pytest.fixture
def fresh_process(monkeypatch):
    """Forget the exports this process holds in memory, so files on disk are all there is."""
    monkeypatch.setattr(embed_onnx, "_models", {})


def refuse_export(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(embed_onnx, "export_features", refuse)


def test_onnx_vectors_equal_torch_vectors_on_real_images(exported, torch_vectors):
    folder, vectors = exported
    assert vectors.shape == torch_vectors.shape == (12, 1280)
    np.testing.assert_allclose(vectors, torch_vectors, atol=1e-4)
    assert np.abs(vectors - torch_vectors).max() > 0  # really another engine
    # the check was recorded beside the export
    import json

    record = json.loads((folder / f"onnx-opset{embed_onnx.OPSET}.json").read_text())
    assert 0 <= record["max_abs_diff"] <= embed_onnx.TOLERANCE and record["images"] == 12


def test_auto_uses_onnx_on_cpu_and_torch_when_asked(batch, exported):
    folder, _ = exported
    assert Embedder(workers=0, backend="auto").engine(batch, folder)[0] == "onnx"
    assert Embedder.param.backend.objects[0] == "auto"  # the tests' default is torch ($BULK_PANEL_BACKEND)
    assert Embedder(workers=0, backend="torch").engine(batch, folder)[0] == "torch"
    # float16 is a CUDA-only option: ignored on the CPU
    assert Embedder(workers=0, backend="torch", half=True).engine(batch, folder)[0] == "torch"


def test_export_is_cached_on_disk_and_reused_without_exporting(batch, exported, fresh_process, monkeypatch):
    folder, vectors = exported
    model_file = folder / f"onnx-opset{embed_onnx.OPSET}.onnx"
    stamp = model_file.stat().st_mtime_ns
    refuse_export(monkeypatch)
    again = Embedder(workers=0, backend="onnx")
    np.testing.assert_allclose(again.embed_tensors(batch, folder=folder), vectors, atol=1e-6)
    assert again.engine(batch, folder)[0] == "onnx"
    assert model_file.stat().st_mtime_ns == stamp


def test_export_held_in_process_is_copied_into_another_cache(batch, exported, tmp_path, monkeypatch):
    refuse_export(monkeypatch)
    Embedder(workers=0, backend="onnx").embed_tensors(batch[:2], folder=tmp_path)
    assert (tmp_path / f"onnx-opset{embed_onnx.OPSET}.onnx").stat().st_size > 1_000_000


def assert_torch_fallback(batch, folder, torch_vectors, caplog, reason):
    embedder = Embedder(workers=0, backend="onnx")
    with caplog.at_level(logging.WARNING, logger="bulk_panel"):
        vectors = embedder.embed_tensors(batch, folder=folder)
    assert embedder.engine(batch, folder)[0] == "torch"
    np.testing.assert_allclose(vectors, torch_vectors, atol=1e-6)
    lines = [r.getMessage() for r in caplog.records if "ONNX backend not used" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert reason in lines[0] and "embedding with PyTorch" in lines[0]


def test_without_onnxruntime_falls_back_to_torch_saying_why(batch, tmp_path, torch_vectors, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime → ImportError
    assert_torch_fallback(batch, tmp_path, torch_vectors, caplog, "onnxruntime is not installed")


def test_export_differing_from_torch_is_refused(batch, exported, torch_vectors, fresh_process, monkeypatch, caplog):
    folder, _ = exported
    monkeypatch.setattr(embed_onnx, "TOLERANCE", 1e-9)  # the real difference is ~1e-5
    assert_torch_fallback(batch, folder, torch_vectors, caplog, "ONNX output differs from PyTorch by")


def test_failing_export_falls_back_to_torch(batch, tmp_path, torch_vectors, fresh_process, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator aten::frobnicate")

    monkeypatch.setattr(torch.onnx, "export", broken)
    assert_torch_fallback(
        batch, tmp_path, torch_vectors, caplog, "ONNX export of EfficientNet failed: unsupported operator aten::frobnicate"
    )
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_pipeline_with_onnx_backend(image_folder, cache_dir, exported):
    from bulk_panel.compute.pipeline import Pipeline

    pipeline = Pipeline(root=image_folder, cache_dir=str(cache_dir), embedder=Embedder(workers=0, backend="onnx"))
    results = pipeline.run()
    assert pipeline.embedder.backend_ == "onnx"
    assert len(results.frame) == 24 and results.frame["cluster"].notna().all()
    assert results.embeddings.shape == (24, 1280)
    assert list(cache_dir.glob(f"embeddings/*/onnx-opset{embed_onnx.OPSET}.onnx"))
    # the same vectors PyTorch gives for those files
    reference = Embedder(workers=0, backend="torch")
    transform = reference.loaded().transform
    files = [image_folder / p for p in pipeline.embedder.paths_]
    expected = reference.embed_tensors(torch.stack([transform(read_image(f)[0]) for f in files]))
    np.testing.assert_allclose(pipeline.embedder.embeddings_, expected, atol=1e-4)


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_dask_partition_honours_the_backend(backend, image_folder, tmp_path, exported, monkeypatch, caplog):
    """What a Dask worker runs: it loads the export the client prepared, never exports again."""
    from bulk_panel.compute.embed import embed_partition

    client = Embedder(workers=0, backend=backend, batch_size=8)
    files = sorted(str(p) for p in image_folder.rglob("*.png"))
    cache = EmbeddingCache(tmp_path, client.loaded().identity)
    client._prepare_engine(files, cache.folder)  # copies the export this process holds
    assert (cache.folder / f"onnx-opset{embed_onnx.OPSET}.onnx").exists() == (backend == "onnx")
    monkeypatch.setattr(embed_onnx, "_models", {})  # the worker is another process
    refuse_export(monkeypatch)
    settings = {k: getattr(client, k) for k in ("model", "weights", "device", "batch_size", "max_pixels", "backend")}
    with caplog.at_level(logging.INFO, logger="bulk_panel"):
        outcomes, embedded = embed_partition(files, settings, str(tmp_path))
    assert embedded == len(files) == 24 and len(outcomes) == 24
    used_onnx = any("embedding with ONNX Runtime" in r.getMessage() for r in caplog.records)
    assert used_onnx == (backend == "onnx")
