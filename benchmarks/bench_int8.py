"""int8 embedding with ONNX Runtime beside the float export, in one run (printed, not asserted).

    python -m benchmarks.bench_int8 --folder data/fmnist10k [--images 1000] [--calibrate 200]

The default model's pooled features are exported to ONNX (as the pipeline exports them), then
quantized two ways: *dynamic* (int8 weights, activations quantized at run time) and *static*
(ORT's pre-processing, then QDQ with per-channel int8 weights and uint8 activations calibrated
on ``--calibrate`` images of the folder, none of them among the measured ones). On ``--images``
images of the folder (every k-th file, first-level folder = truth), for each: images/s at
batch 32 on the machine's cores (best of 2, after a warm-up) and the ratio to float; the cosine
of each image's vector to its float vector (median and 1st percentile); the 5-fold kNN-5
accuracy (cosine) against the float vectors' own.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _images(folder: Path, n: int, offset: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    step = max(len(files) // n, 1)
    return files[offset::step][:n]


def _run(session, x: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([session.run(None, {"pixels": np.ascontiguousarray(x[i:i + batch])})[0]
                           for i in range(0, len(x), batch)])


def _speed(session, x: np.ndarray) -> tuple[float, np.ndarray]:
    _run(session, x[:64])
    best, out = float("inf"), None
    for _ in range(2):
        start = time.perf_counter()
        out = _run(session, x)
        best = min(best, time.perf_counter() - start)
    return len(x) / best, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_int8", description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="images in first-level folders (the truth)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--calibrate", type=int, default=200)
    args = parser.parse_args(argv)
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from PIL import Image
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from bulk_panel.compute.embed.models import load_model
    from bulk_panel.compute.embed.onnx import export_features

    lm = load_model(device="cpu")

    def pixels(files) -> np.ndarray:
        return lm.preprocess.normalise(torch.stack([lm.preprocess.image(Image.open(f).convert("RGB"))
                                                    for f in files])).numpy().astype(np.float32)

    measured = _images(args.folder, args.images, 0)
    x, truth = pixels(measured), [p.relative_to(args.folder).parts[0] for p in measured]
    calibration = pixels(_images(args.folder, args.calibrate, 1))
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: str(Path(tmp) / f"{name}.onnx") for name in ("float", "prepared", "dynamic", "static")}
        Path(paths["float"]).write_bytes(export_features(lm.model, tuple(lm.data_config["input_size"])))
        quantize_dynamic(paths["float"], paths["dynamic"], weight_type=QuantType.QInt8)
        quant_pre_process(paths["float"], paths["prepared"])

        class Calibration(CalibrationDataReader):
            def __init__(self):
                self.batches = iter([{"pixels": calibration[i:i + 20]} for i in range(0, len(calibration), 20)])

            def get_next(self):
                return next(self.batches, None)

        quantize_static(paths["prepared"], paths["static"], Calibration(), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        rows = {}
        for name in ("float", "dynamic", "static"):
            session = ort.InferenceSession(paths[name], options, providers=["CPUExecutionProvider"])
            rows[name] = _speed(session, x)
    base_speed, base = rows["float"]
    knn = KNeighborsClassifier(5, metric="cosine")
    print(f"{len(x)} images of {args.folder}, {len(set(truth))} folders; calibrated on {len(calibration)} others")
    print("| precision | images/s | ÷ float | cosine to float: median / 1st pct | kNN-5 accuracy |")
    print("|---|---|---|---|---|")
    for name, (speed, vectors) in rows.items():
        cosine = (vectors * base).sum(1) / np.linalg.norm(vectors, axis=1) / np.linalg.norm(base, axis=1)
        accuracy = cross_val_score(knn, vectors, truth, cv=5).mean()
        print(f"| {name} | {speed:.0f} | {speed / base_speed:.2f} | {np.median(cosine):.4f} / "
              f"{np.percentile(cosine, 1):.4f} | {accuracy:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
