"""Image embeddings with timm models (PyTorch, or ONNX Runtime on the CPU), cached by content hash.

>>> from bulk_panel.compute.embed import Embedder
>>> Embedder(model="tf_efficientnet_lite0").fit("photos", ["a.jpg", "b/c.png"]).embeddings_.shape
(2, 1280)

The parts: :mod:`.models` (model names, weights, loading), :mod:`.preprocess` (timm's transform
split per image and per batch), :mod:`.engines` and :mod:`.onnx` (the forward pass with PyTorch
or ONNX Runtime), :mod:`.embedder` (the :class:`Embedder`), :mod:`.distributed` (Dask workers).
torch, timm and onnxruntime are imported lazily, inside the functions that need them.
"""
from .embedder import DASK_SETTINGS, Embedder, embed_partition
from .engines import HALF_TOLERANCE, torch_features
from .models import (
    DEFAULT_MODEL,
    HUB_HOST,
    OFFLINE_WEIGHTS,
    EmbedError,
    LoadedModel,
    check_model_name,
    file_digest,
    hub_reachable,
    load_model,
    load_weights_file,
    offline_weights_file,
    pick_device,
    shared_model,
)
from .preprocess import Preprocess

__all__ = [
    "DASK_SETTINGS",
    "DEFAULT_MODEL",
    "HALF_TOLERANCE",
    "HUB_HOST",
    "OFFLINE_WEIGHTS",
    "EmbedError",
    "Embedder",
    "LoadedModel",
    "Preprocess",
    "check_model_name",
    "embed_partition",
    "file_digest",
    "hub_reachable",
    "load_model",
    "load_weights_file",
    "offline_weights_file",
    "pick_device",
    "shared_model",
    "torch_features",
]
