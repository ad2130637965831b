"""int8 embedding beside float, in one run (printed, not asserted).

    python -m benchmarks.bench_int8 --folder data/fmnist10k [--images 2000]

On ``--images`` images of the folder (every k-th file; first-level folder = truth), embedded
as the pipeline embeds them (:class:`Embedder` into a fresh cache): ``float32`` (the ONNX
export), ``int8`` (``--precision int8``: static QDQ calibrated on 200 of these images; export and calibration
in a first pass, the step timed in a second one into a new cache) and,
for the record, ONNX Runtime's *dynamic* int8 quantization of the same export. For each:
forward-pass images/s on the same preprocessed batches (batch 32, best of 2 after a warm-up)
and the ratio to float; the whole embedding step's images/s (decoding included) for the two
the pipeline offers; the cosine of each image's vector to its float vector (median and 1st
percentile); the 5-fold kNN-5 accuracy (cosine) and its difference from float's.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _files(folder: Path, n: int) -> list[str]:
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                   if p.suffix.lower() in {".png", ".jpg", ".jpeg"})
    return files[:: max(len(files) // n, 1)][:n]


def _forward_speed(forward, x: np.ndarray, batch: int = 32) -> float:
    forward(x[:batch])
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for i in range(0, len(x), batch):
            forward(x[i:i + batch])
        best = min(best, time.perf_counter() - start)
    return len(x) / best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_int8", description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, required=True, help="images in first-level folders (the truth)")
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args(argv)
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from bulk_panel.compute.embed import Embedder
    from bulk_panel.compute.embed.onnx import _session

    files = _files(args.folder, args.images)
    truth = [f.split("/")[0] for f in files]
    vectors, step_speed, engines = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in ("float32", "int8"):
            Embedder(precision=precision).fit(args.folder, files, Path(tmp) / "warm")  # export, calibrate
            embedder = Embedder(precision=precision)
            start = time.perf_counter()
            embedder.fit(args.folder, files, Path(tmp) / precision)
            step_speed[precision] = len(files) / (time.perf_counter() - start)
            vectors[precision] = embedder.embeddings_
            engines[precision] = embedder._engine[2]
            calibrated_on = getattr(engines[precision], "images", 0)
        some = [str(args.folder / f) for f in files[:: max(1, len(files) // 512)]]
        x = np.ascontiguousarray(embedder._sample(some, 512).numpy(), np.float32)
        source, dynamic = Path(tmp) / "float.onnx", Path(tmp) / "dynamic.onnx"
        source.write_bytes(engines["float32"].data)
        quantize_dynamic(str(source), str(dynamic), weight_type=QuantType.QInt8)
        session = _session(ort, dynamic.read_bytes())
        engines["dynamic"] = lambda batch: session.run(None, {"pixels": batch})[0]
        vectors["dynamic"] = np.concatenate([engines["dynamic"](x[i:i + 32]) for i in range(0, len(x), 32)])
    forward = {name: _forward_speed(engine, x) for name, engine in engines.items()}
    knn = KNeighborsClassifier(5, metric="cosine")
    base = {"float32": vectors["float32"], "int8": vectors["float32"],
            "dynamic": np.concatenate([engines["float32"](x[i:i + 32]) for i in range(0, len(x), 32)])}
    accuracy = {name: cross_val_score(knn, vectors[name], truth, cv=5).mean() for name in ("float32", "int8")}
    print(f"{len(files)} images of {args.folder}, {len(set(truth))} folders; int8 calibrated on {calibrated_on} of them")
    print("| precision | forward images/s | ÷ float | embedding step images/s | cosine to float: median / 1st pct "
          "| kNN-5 accuracy (− float) |")
    print("|---|---|---|---|---|---|")
    for name in ("float32", "int8", "dynamic"):
        v, b = vectors[name], base[name]
        cosine = (v * b).sum(1) / np.linalg.norm(v, axis=1) / np.linalg.norm(b, axis=1)
        step = f"{step_speed[name]:.0f}" if name in step_speed else f"({len(x)} images, forward only)"
        knn_text = (f"{accuracy[name]:.3f} ({accuracy[name] - accuracy['float32']:+.3f})" if name in accuracy else "")
        print(f"| {name} | {forward[name]:.0f} | {forward[name] / forward['float32']:.2f} | {step} | "
              f"{np.median(cosine):.4f} / {np.percentile(cosine, 1):.4f} | {knn_text} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
