"""Readable cluster names from the model's own ImageNet predictions.

>>> suggest_names(labels, classes)          # classes = Embedder.classes_ (top-k ids, probabilities)
{0: 'tabby / tiger cat', 1: 'sports car', 2: 'sports car (2)'}

A cluster is named after the classes that carry most of its members' predicted probability
(the runner-up joins when it carries at least half as much). Clusters that end up with the
same name get a number; noise keeps its label.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from .schema import NOISE, cluster_label


@functools.lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """Short ImageNet-1k class names, index-aligned ('tabby', 'tiger cat', ...), from timm."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(info.num_classes()))


def suggest_names(
    labels: np.ndarray, classes: Optional[tuple[np.ndarray, np.ndarray]], runner_up: float = 0.5
) -> dict[int, str]:
    """A name per cluster id (noise excluded); 'cluster N' when ``classes`` is None."""
    ids = sorted(int(c) for c in np.unique(labels) if c != NOISE)
    if classes is None:
        return {c: cluster_label(c) for c in ids}
    names = imagenet_names()
    idx, prob = classes
    out: dict[int, str] = {}
    taken: dict[str, int] = {}
    for c in ids:
        members = labels == c
        mass = np.bincount(idx[members].ravel().astype(np.int64), weights=prob[members].ravel().astype(np.float64), minlength=len(names))
        first, second = np.argsort(mass)[::-1][:2]
        name = names[first]
        if mass[second] >= runner_up * mass[first] and names[second] != name:
            name = f"{name} / {names[second]}"
        taken[name] = taken.get(name, 0) + 1
        out[c] = name if taken[name] == 1 else f"{name} ({taken[name]})"
    return out
