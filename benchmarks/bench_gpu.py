"""The CUDA embedding path, measured beside the CPU one in the same run (printed, not asserted).

    python -m benchmarks.bench_gpu [--folder DIR] [--images 2000] [--batch-sizes 32 128 256]

For each batch size, float32 and ``--half`` (float16 where its output matches float32):

- **embed stage**: images/s of ``Embedder.fit`` on the GPU with a fresh cache: read, hash and
  decode in DataLoader processes, pinned batches copied without blocking, forward, cache;
- **bare forward**: images/s of the model alone on batches already on the GPU;
- **copy**: milliseconds to copy one batch to the GPU from pinned and from pageable memory.

The baseline, in the same run: the CPU's bare forward pass through the engine a CPU run uses
(ONNX Runtime when installed), on the same images. Without ``--folder``, the images are made
from the bundled demo images (crops and noise, so that no two share content). With no CUDA
device it says so and stops (``--device cpu`` runs the same steps on the CPU, as a check).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from .bench import decoded, forward_rate, sample_paths

DEMO = Path(__file__).resolve().parents[1] / "bulk_panel" / "demo"


def made_images(out: Path, n: int, seed: int = 0) -> Path:
    """``n`` distinct JPEGs from the demo images: random crops, resized, with a little noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    sources = sorted(p for p in DEMO.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    out.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        with Image.open(sources[i % len(sources)]) as im:
            im = im.convert("RGB")
        w, h = im.size
        x0, y0 = rng.integers(0, max(1, w // 4)), rng.integers(0, max(1, h // 4))
        crop = np.asarray(im.crop((x0, y0, x0 + max(8, w * 3 // 4), y0 + max(8, h * 3 // 4))).resize((320, 320)))
        noisy = np.clip(crop + rng.normal(0, 4, crop.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(out / f"img_{i:05d}.jpg", quality=90)
    return out


def copy_ms(tensors, device: str, repeats: int = 10) -> dict:
    """Milliseconds per batch copied to ``device`` from pinned and from pageable memory."""
    import torch

    host = tensors.float().cpu().contiguous()
    sources = {"pageable": host}
    if device.startswith("cuda"):
        sources["pinned"] = host.pin_memory()
    out = {}
    for name, source in sources.items():
        source.to(device, non_blocking=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            source.to(device, non_blocking=name == "pinned")
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        out[name] = round(1000 * (time.perf_counter() - start) / repeats, 2)
    return out


def gpu_row(folder: Path, paths: list[str], device: str, batch_size: int, half: bool, workers: int) -> dict:
    """One batch size and precision on ``device``: embed stage, bare forward, copy."""
    from bulk_panel.compute.embed import Embedder

    embedder = Embedder(device=device, batch_size=batch_size, half=half, backend="torch", workers=workers)
    with tempfile.TemporaryDirectory() as cache:
        embedder.fit(folder, paths[:batch_size], cache)  # load, choose the engine (float16 if it matches)
        tensors, _ = decoded(embedder, folder, paths[: 4 * batch_size])
        start = time.perf_counter()
        embedder.fit(folder, paths[batch_size:], cache)
        stage = len(embedder.paths_) / (time.perf_counter() - start)
    engine = embedder.engine(tensors[:1])[0]
    return {"device": device, "batch_size": batch_size, "half": half, "engine": engine,
            "embed_rate": round(stage, 1), "forward_rate": round(forward_rate(embedder, tensors)[0], 1),
            "copy_ms": copy_ms(tensors[:batch_size], device)}


def cpu_baseline(folder: Path, paths: list[str], batch_size: int = 32) -> dict:
    """The CPU's bare forward pass (the engine a CPU run uses) on the same images."""
    from bulk_panel.compute.embed import Embedder

    embedder = Embedder(device="cpu", batch_size=batch_size)
    tensors, _ = decoded(embedder, folder, paths[:256])
    rate = forward_rate(embedder, tensors)[0]
    return {"engine": embedder.engine(tensors[:1])[0], "forward_rate": round(rate, 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, default=None, help="images to embed (default: made from the demo)")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 256])
    parser.add_argument("--workers", type=int, default=8, help="DataLoader processes decoding beside the GPU")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: nothing to measure (the CPU figures are in docs/performance.md)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or made_images(Path(tmp) / "images", args.images)
        paths = sample_paths(folder, args.images)
        baseline = cpu_baseline(folder, paths)
        halves = (False, True) if args.device.startswith("cuda") else (False,)
        rows = [gpu_row(folder, paths, args.device, b, h, args.workers) for b in args.batch_sizes for h in halves]
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    report = {"device": name, "images": len(paths), "cpu_baseline": baseline, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{name}, {len(paths)} images; CPU bare forward ({baseline['engine']}): {baseline['forward_rate']} images/s")
    print("| batch | half | engine | embed stage images/s | bare forward images/s | ÷ CPU forward | copy ms: pageable / pinned |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        copy = r["copy_ms"]
        print(f"| {r['batch_size']} | {r['half']} | {r['engine']} | {r['embed_rate']} | {r['forward_rate']} "
              f"| {r['forward_rate'] / baseline['forward_rate']:.1f}× | {copy['pageable']} / {copy.get('pinned', '–')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
