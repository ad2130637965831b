"""int8 embedding (``--precision int8``) with the real offline model on real images: ONNX
Runtime's static quantization calibrated on the images being embedded, vectors close to float
ones, cached apart, one calibration per cache, clear refusals."""
import json

import numpy as np
import pytest

from bulk_panel.compute.embed import EmbedError, Embedder
from bulk_panel.compute.embed import onnx as embed_onnx

pytestmark = pytest.mark.slow


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png"))


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """24 real images embedded in float32 and in int8 into one cache: (folder, cache, {precision: embedder})."""
    from helpers import demo_subset

    folder = demo_subset(tmp_path_factory.mktemp("images"))
    cache = tmp_path_factory.mktemp("cache")
    out = {}
    for precision in ("float32", "int8"):
        out[precision] = Embedder(workers=0, batch_size=8, backend="auto", precision=precision).fit(folder, _files(folder), cache)
    return folder, cache, out


def test_int8_vectors_are_close_to_float_and_cached_apart(embedded):
    folder, cache, by = embedded
    assert by["int8"].backend_ == "onnx-int8" and by["float32"].backend_ == "onnx"
    assert by["int8"].counts_["embedded"] == 24  # the float vectors were not taken for int8 ones
    assert by["int8"].paths_ == by["float32"].paths_
    cosine = (by["int8"].embeddings_ * by["float32"].embeddings_).sum(1)
    assert np.median(cosine) > 0.9 and cosine.min() > 0.7, cosine
    assert not np.allclose(by["int8"].embeddings_, by["float32"].embeddings_, atol=1e-4)  # really int8
    identities = [json.loads(p.read_text()) for p in cache.glob("embeddings/*/model.json")]
    assert sorted(i.get("precision", "float32") for i in identities) == ["float32", "int8"]
    # the int8 model and its record sit in the int8 cache only, calibrated on the images embedded
    saved = list(cache.glob(f"embeddings/*/onnx-opset{embed_onnx.OPSET}-int8.onnx"))
    assert len(saved) == 1 and json.loads((saved[0].parent / "model.json").read_text())["precision"] == "int8"
    record = json.loads(saved[0].with_suffix(".json").read_text())
    assert record["calibration_images"] == 24
    assert 0.9 < record["cosine_to_float"]["median"] <= 1.0
    # the classes come from the model's head on int8 features: most images keep their top class
    same_top = (by["int8"].classes_[0][:, 0] == by["float32"].classes_[0][:, 0]).mean()
    assert same_top > 0.5, same_top


def test_int8_rerun_reads_its_cache_and_a_new_process_its_saved_model(embedded, monkeypatch):
    folder, cache, by = embedded
    again = Embedder(workers=0, batch_size=8, backend="auto", precision="int8").fit(folder, _files(folder), cache)
    assert again.counts_ == {"embedded": 0, "cached": 24, "skipped": 0}
    np.testing.assert_array_equal(again.embeddings_, by["int8"].embeddings_)
    # another process: the saved int8 model is loaded, never calibrated again
    monkeypatch.setattr(embed_onnx, "_models", {})
    saved = next(cache.glob(f"embeddings/*/onnx-opset{embed_onnx.OPSET}-int8.onnx"))
    lm = Embedder().loaded()

    def calibrate():
        raise AssertionError("calibrated again")

    float_model = embed_onnx.OnnxModel(None, b"", 0.0, 0)
    model = embed_onnx.int8_model(lm, float_model, calibrate, saved.parent)
    assert model.data == saved.read_bytes() and model.images == 24


def test_int8_with_pytorch_or_too_far_from_float_is_refused_with_its_reason(embedded, tmp_path, monkeypatch):
    folder, _, _ = embedded
    files = _files(folder)[:4]
    with pytest.raises(EmbedError, match="int8 runs with ONNX Runtime, not with backend torch"):
        Embedder(workers=0, precision="int8", backend="torch").fit(folder, files, tmp_path / "a")
    monkeypatch.setattr(embed_onnx, "_models", {})
    monkeypatch.setattr(embed_onnx, "INT8_MIN_COSINE", 1.01)  # no int8 model can be that close
    with pytest.raises(EmbedError, match="too far from float"):
        Embedder(workers=0, backend="auto", precision="int8").fit(folder, files, tmp_path / "b")
    assert not list((tmp_path / "b").glob("embeddings/*/*-int8.onnx"))  # a refused model is not kept


def test_precision_is_a_pipeline_flag_that_restarts_from_embedding(image_folder, tmp_path):
    from bulk_panel.cli import make_parser
    from bulk_panel.compute.pipeline import Pipeline

    args = make_parser().parse_args(["run", str(image_folder), "--precision", "int8"])
    assert getattr(args, "embedder.precision") == "int8"
    with pytest.raises(SystemExit):
        make_parser().parse_args(["run", str(image_folder), "--precision", "int4"])
    pipeline = Pipeline(root=image_folder, cache_dir=str(tmp_path))
    pipeline._tokens = pipeline._stage_tokens()
    pipeline.embedder.precision = "int8"
    assert pipeline.stale() == ["embed", "project", "cluster"]
