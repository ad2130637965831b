"""The PyTorch forward pass that gives the raw pooled features; the ONNX Runtime one is in
:mod:`.onnx`. torch is imported lazily."""
from __future__ import annotations

import numpy as np


def torch_features(model, device: str, batch, half: bool = False) -> np.ndarray:
    """Raw pooled pre-logits features of a preprocessed ``batch`` through a timm ``model``.

    On CUDA the batch arrives in pinned memory (DataLoader ``pin_memory``), so the copy to the
    GPU is ``non_blocking`` and overlaps the previous batch's work; ``half`` runs a float16
    copy of the model (see :meth:`Embedder.engine`, which only allows it where outputs match).
    """
    import torch

    with torch.inference_mode():
        x = batch.to(device, non_blocking=device.startswith("cuda"))
        if device != "mps":
            x = x.contiguous(memory_format=torch.channels_last)
        if half:
            x = x.half()
        feats = model.forward_head(model.forward_features(x), pre_logits=True).float().flatten(1)
        return feats.cpu().numpy()


HALF_TOLERANCE = 1e-2  # float16 allowed when max abs diff ≤ this × the largest float32 feature
