"""timm's eval transform split in two: per image in the decoding workers, per batch before the
forward pass (see :class:`Preprocess`). torch is imported lazily."""
from __future__ import annotations

import numpy as np


class Preprocess:
    """timm's eval transform in two halves with the same result, bit for bit:
    :meth:`image` (PIL resize and crop → uint8 HWC tensor; in the decoding threads or processes) and
    :meth:`normalise` (float, scale, mean/std for a whole batch: on the CPU one table lookup
    per value, on a GPU vectorised ops there). A transform not shaped ``PIL ops, ToTensor,
    Normalize`` runs whole per image.

    Where the PIL ops are the usual ``Resize, CenterCrop`` (which treat every band alike), a
    greyscale image (``takes_grey``: :func:`decode_image` with ``grey=True``) is resized as one
    band, then copied into three: half the work, the same values. (Resizing just the box the
    crop keeps would save another 20-40%, but PIL rounds a box's corners to float32, which
    moves pixels of fine detail by up to 24 levels.)

    >>> pre = Preprocess(lm.transform); pre.normalise(torch.stack([pre.image(rgb)]))
    """

    def __init__(self, transform):
        import torch

        self.transform = transform
        self.takes_grey = False
        steps = list(getattr(transform, "transforms", []))
        kinds = [type(t).__name__ for t in steps]
        self.pil_ops = self.mean = self.std = self.lut = None
        if kinds[-2:] == ["MaybeToTensor", "Normalize"] or kinds[-2:] == ["ToTensor", "Normalize"]:
            if not {"ToTensor", "MaybeToTensor", "Normalize"} & set(kinds[:-2]):
                self.pil_ops = steps[:-2]
                self.mean = torch.as_tensor(steps[-1].mean, dtype=torch.float32).view(1, -1, 1, 1)
                self.std = torch.as_tensor(steps[-1].std, dtype=torch.float32).view(1, -1, 1, 1)
                # every uint8 value of every channel through the very ops of _normalise_torch
                channels = max(3, self.mean.shape[1])  # decoded images are RGB; a 1-value mean broadcasts
                levels = torch.arange(256, dtype=torch.uint8).view(1, 1, 256, 1).expand(1, 1, 256, channels)
                self.lut = self._normalise_torch(levels.contiguous(), "cpu")[0, :, 0, :].numpy().copy()  # C x 256
                # Resize and CenterCrop (pads with 0) filter each band alike: grey can stay one band
                self.takes_grey = kinds[:-2] == ["Resize", "CenterCrop"] and channels == 3

    def image(self, image):
        """One decoded PIL image (RGB, or L where :attr:`takes_grey`) → uint8 HWC tensor, as
        PIL lays it out (float CHW for an unsplit transform)."""
        import torch

        if self.pil_ops is None:
            return self.transform(image)
        for op in self.pil_ops:
            image = op(image)
        pixels = np.asarray(image, np.uint8)
        if pixels.ndim == 2:  # a grey image, resized as one band
            return torch.from_numpy(np.repeat(pixels[:, :, None], 3, axis=2))
        return torch.from_numpy(np.array(pixels, copy=True))

    def _normalise_torch(self, batch, device: str):
        import torch

        x = batch.permute(0, 3, 1, 2).to(torch.float32).div_(255)  # as torchvision's to_tensor
        return x.sub_(self.mean.to(device)).div_(self.std.to(device))  # then Normalize

    def normalise(self, batch, device: str = "cpu", channels_last: bool = True):
        """A stacked batch from :meth:`image` → the model's float NCHW input on ``device``.

        On the CPU ``channels_last`` gives NHWC memory (what PyTorch runs fastest), else
        contiguous NCHW (what ONNX Runtime takes without a copy)."""
        import torch

        batch = batch.to(device, non_blocking=device.startswith("cuda"))  # pinned by the DataLoader
        if batch.dtype != torch.uint8:
            return batch
        if device != "cpu" or self.lut is None:
            return self._normalise_torch(batch, device)
        pixels = batch.numpy()
        if not channels_last:
            pixels = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))  # uint8: a quarter of the bytes
        out = np.empty(pixels.shape, np.float32)
        axis = 3 if channels_last else 1
        for c, table in enumerate(self.lut):  # one gather per channel
            np.moveaxis(out, axis, 0)[c] = table[np.moveaxis(pixels, axis, 0)[c]]
        out = torch.from_numpy(out)
        return out.permute(0, 3, 1, 2) if channels_last else out

    def __call__(self, image):
        """The whole transform of one image (float CHW), as ``transform(image)`` gives it."""
        return self.normalise(self.image(image)[None])[0]
