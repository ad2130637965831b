"""The embedding model exported to ONNX and run with ONNX Runtime on the CPU.

>>> model = onnx_model(lm, sample, folder, reference)   # export once, check, cache
>>> model(batch).shape                                  # raw pooled features, float32
(32, 1280)

The export holds only the pooled pre-logits features (what the embedding cache stores);
ImageNet classes come from the PyTorch head applied to cached features, so the head is not
exported. One export per (model, weights identity, preprocessing incl. input size, opset),
written atomically as ``onnx-opset<N>.onnx`` into the model's embedding-cache folder, with
``onnx-opset<N>.json`` beside it recording the check: the max abs difference from PyTorch on
the first real batch. A later process loads the file and trusts the recorded check; a
difference above :data:`TOLERANCE` refuses the export (the caller falls back to PyTorch).

onnxruntime, onnx and onnxscript (``torch.onnx.export(dynamo=True)`` needs the last two) are
imported lazily; a missing one is a refusal with its reason, never an error.

int8 (:func:`int8_model`): the float export quantized statically (QDQ: per-channel int8
weights, uint8 activations) with ranges calibrated on up to :data:`CALIBRATION_IMAGES` of the
user's images, the first ones embedded in int8 into that cache; saved beside the float export
as ``onnx-opset<N>-int8.onnx`` and reused, so every int8 vector of one cache comes from the
same model. Its record holds the cosine of int8 to float features on the calibration images;
a median under :data:`INT8_MIN_COSINE` refuses it.
"""
from __future__ import annotations

import contextlib
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..cache import atomic_write, fingerprint

log = logging.getLogger("bulk_panel")

OPSET = 18
TOLERANCE = 1e-3  # max abs difference of raw pooled features (PyTorch vs ONNX; ~1e-5 seen)
MAX_BATCH = 65_536
CALIBRATION_IMAGES = 200  # spread over the files to embed (the int8 ranges see every kind)
INT8_MIN_COSINE = 0.9  # median cosine of int8 to float features on the calibration images


class OnnxUnavailable(RuntimeError):
    """A one-line reason why the ONNX backend cannot be used (the caller falls back to PyTorch)."""


@dataclass
class OnnxModel:
    """An ONNX Runtime session over the exported features; call it on a preprocessed batch."""

    session: Any
    data: bytes  # the serialised model, to copy into another cache folder without re-exporting
    max_abs_diff: float  # vs PyTorch on the first real batch
    images: int  # how many images that check (or an int8 model's calibration) used
    cosine: Optional[dict] = None  # int8: cosine to float features on the calibration images

    def __call__(self, batch) -> np.ndarray:
        x = batch.numpy() if hasattr(batch, "numpy") else np.asarray(batch)
        return self.session.run(None, {"pixels": np.ascontiguousarray(x, dtype=np.float32)})[0]


# in-process: export key -> OnnxModel or refusal reason (sessions are read-only, run is thread-safe)
_models: dict[str, OnnxModel | str] = {}
_lock = threading.Lock()


def _runtime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from exc
    return onnxruntime


def _session(ort, data: bytes):
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # no busy-waiting between batches: the cores are shared with the image-decoding workers
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def _quiet(*names: str):
    """The loggers ``names`` (the root logger for none) at WARNING meanwhile."""
    loggers = [logging.getLogger(name) for name in names] if names else [logging.getLogger()]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_features(model, input_size: tuple) -> bytes:
    """Serialised ONNX of ``model``'s pooled pre-logits features, batch size dynamic."""
    import copy

    import torch

    class Features(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net.forward_head(self.net.forward_features(x), pre_logits=True).flatten(1)

    net = model if next(model.parameters()).device.type == "cpu" else copy.deepcopy(model).cpu()
    example = torch.zeros((2, *input_size))
    try:
        with _quiet("onnx_ir", "onnxscript", "torch.onnx"):  # dozens of INFO lines per export (graph passes)
            program = torch.onnx.export(
                Features(net).eval(),
                (example,),
                dynamo=True,
                verbose=False,
                input_names=["pixels"],
                output_names=["features"],
                opset_version=OPSET,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=MAX_BATCH)},),
            )
        return program.model_proto.SerializeToString()
    except ImportError as exc:  # onnx / onnxscript missing
        raise OnnxUnavailable(f"ONNX export needs onnx and onnxscript ({exc})") from exc
    except Exception as exc:
        raise OnnxUnavailable(f"ONNX export of {type(model).__name__} failed: {str(exc).splitlines()[0]}") from exc


def _check(model: OnnxModel) -> OnnxModel:
    if not model.max_abs_diff <= TOLERANCE:  # also refuses NaN
        raise OnnxUnavailable(
            f"ONNX output differs from PyTorch by {model.max_abs_diff:.1e} (tolerance {TOLERANCE:.0e})"
        )
    return model


def _save(folder: Path, model: OnnxModel, exported: bool) -> None:
    path = folder / f"onnx-opset{OPSET}.onnx"
    if exported or not path.exists():
        atomic_write(path, lambda fh: fh.write(model.data))
    record = json.dumps(
        {"max_abs_diff": model.max_abs_diff, "images": model.images, "runtime": _runtime().__version__}, indent=2
    )
    info = path.with_suffix(".json")
    if not info.exists() or info.read_text() != record:
        atomic_write(info, lambda fh: fh.write(record.encode()))


def _load(ort, folder: Path) -> Optional[OnnxModel]:
    """The export and its check recorded in ``folder`` (by this onnxruntime version), else None."""
    path = folder / f"onnx-opset{OPSET}.onnx"
    try:
        record = json.loads(path.with_suffix(".json").read_text())
        if record.get("runtime") != ort.__version__:
            return None
        data = path.read_bytes()
        return OnnxModel(_session(ort, data), data, float(record["max_abs_diff"]), int(record["images"]))
    except Exception:  # missing, unreadable or damaged: export again
        return None


def onnx_model(lm, sample, folder: Optional[Path], reference: Callable[[Any], np.ndarray]) -> OnnxModel:
    """The ONNX Runtime model for the loaded model ``lm``: from this process, else from
    ``folder`` (None: keep it in memory only), else exported now and checked against
    ``reference(sample)`` (raw PyTorch features of a real preprocessed batch).

    Raises :class:`OnnxUnavailable` with a one-line reason when it cannot be used.
    """
    ort = _runtime()
    key = fingerprint({**lm.identity, "opset": OPSET, "outputs": "pooled features"})
    with _lock:
        model = _models.get(key)
        if model is None and folder is not None:
            model = _load(ort, Path(folder))
        exported = model is None
        if exported:
            log.info("exporting %s to ONNX for ONNX Runtime (once per model and cache)",
                     lm.identity.get("model", type(lm.model).__name__))
            try:
                data = export_features(lm.model, tuple(lm.data_config["input_size"]))
                session = _session(ort, data)
            except OnnxUnavailable as exc:
                _models[key] = str(exc)
                raise
            except Exception as exc:  # onnxruntime cannot load what torch exported
                _models[key] = f"ONNX Runtime cannot load the export: {str(exc).splitlines()[0]}"
                raise OnnxUnavailable(_models[key]) from exc
            model = OnnxModel(session, data, float("nan"), len(sample))
            model.max_abs_diff = float(np.abs(model(sample) - reference(sample)).max())
        if isinstance(model, str):
            raise OnnxUnavailable(model)
        _models[key] = model
        if folder is not None:
            _save(Path(folder), model, exported)
    return _check(model)


def int8_model(lm, float_model: OnnxModel, calibration: Callable[[], Optional[np.ndarray]],
               folder: Optional[Path]) -> OnnxModel:
    """The int8 model of ``float_model`` (the checked float export of ``lm``): from this process,
    else from ``folder``, else quantized now with activation ranges from ``calibration()``
    (preprocessed float32 images, NCHW; called only then) and saved into ``folder``.

    ``max_abs_diff`` is not a check here; the record keeps the cosine of int8 to float features
    on the calibration images (median and minimum). Raises :class:`OnnxUnavailable`.
    """
    ort = _runtime()
    key = fingerprint({**lm.identity, "opset": OPSET, "outputs": "pooled features", "precision": "int8"})
    path = None if folder is None else Path(folder) / f"onnx-opset{OPSET}-int8.onnx"
    with _lock:
        model = _models.get(key)
        if model is None and path is not None:
            model = _load_int8(ort, path)
        if model is None:
            images = calibration()
            if images is None or not len(images):
                raise OnnxUnavailable("no decodable image to calibrate int8 on")
            try:
                data = _quantize(float_model.data, images)
                model = OnnxModel(_session(ort, data), data, float("nan"), len(images))
            except ImportError as exc:
                raise OnnxUnavailable(f"int8 quantization needs onnxruntime.quantization and onnx ({exc})") from exc
            except Exception as exc:
                raise OnnxUnavailable(f"int8 quantization failed: {str(exc).splitlines()[0]}") from exc
            cosine = _cosines(model(images), float_model(images))
            model.cosine = {"median": float(np.median(cosine)), "min": float(cosine.min())}
            if not model.cosine["median"] >= INT8_MIN_COSINE:
                model = (f"int8 features are too far from float ones (median cosine "
                         f"{model.cosine['median']:.3f} < {INT8_MIN_COSINE})")
        if isinstance(model, OnnxModel) and path is not None and not path.exists():
            _save_int8(path, model, ort.__version__)  # new, or made for another cache of this process
        _models[key] = model
        if isinstance(model, str):
            raise OnnxUnavailable(model)
    return model


def _save_int8(path: Path, model: OnnxModel, runtime: str) -> None:
    atomic_write(path, lambda fh: fh.write(model.data))
    record = {"calibration_images": model.images, "cosine_to_float": model.cosine, "runtime": runtime}
    atomic_write(path.with_suffix(".json"), lambda fh: fh.write(json.dumps(record, indent=2).encode()))


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def _load_int8(ort, path: Path) -> Optional[OnnxModel]:
    """The int8 model saved at ``path`` (the same one for every later run on that cache), else None."""
    try:
        record = json.loads(path.with_suffix(".json").read_text())
        data = path.read_bytes()
        model = OnnxModel(_session(ort, data), data, float("nan"), int(record["calibration_images"]))
        model.cosine = dict(record["cosine_to_float"])
        return model
    except Exception:  # missing, unreadable or damaged: calibrate again
        return None


def _quantize(data: bytes, images: np.ndarray, batch: int = 20) -> bytes:
    """Static QDQ quantization of the float export ``data``, ranges calibrated on ``images``."""
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Calibration(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"pixels": images[i:i + batch]} for i in range(0, len(images), batch)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory(prefix="bulk-panel-int8-") as tmp:
        source, prepared, out = (Path(tmp) / name for name in ("float.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(data)
        with _quiet(), _quiet("onnxruntime.quantization.shape_inference"):  # a line per tensor, on the root logger
            quant_pre_process(str(source), str(prepared))
            quantize_static(str(prepared), str(out), Calibration(), quant_format=QuantFormat.QDQ, per_channel=True,
                            weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        return out.read_bytes()
