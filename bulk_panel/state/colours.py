"""Label colours: a categorical palette, noise in grey, a label keeps its colour for the session.

>>> assign_colours(["cluster 0", "noise"], {})      # {'cluster 0': '#…', 'noise': '#bdbdbd'}
"""
from __future__ import annotations

import functools
from typing import Iterable, Mapping

from ..compute.schema import NOISE_LABEL

__all__ = ["NOISE_COLOR", "assign_colours", "label_palette"]

NOISE_COLOR = "#bdbdbd"


@functools.lru_cache(maxsize=1)
def _palette() -> tuple[str, ...]:
    try:
        import colorcet

        colors = list(colorcet.palette["glasbey_category10"])
    except Exception:  # colorcet comes with holoviews; this is only a fallback
        colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                  "#bcbd22", "#17becf"]
    return tuple(c for c in colors if len({c[1:3], c[3:5], c[5:7]}) > 1)


def label_palette() -> list[str]:
    """The categorical colours labels take in turn (glasbey, greys removed; noise is grey)."""
    return list(_palette())


def assign_colours(labels: Iterable[str], colors: Mapping[str, str]) -> dict[str, str]:
    """``colors`` with a colour added for each of ``labels`` that has none: noise grey, the
    others the palette's first colour not in use (the palette again, in turn, once all are).

    >>> assign_colours(["cats", "dogs"], {"cats": "#ff0000"})   # cats keeps its red
    """
    palette = _palette()
    colors = dict(colors)
    used = set(colors.values())
    free = iter([c for c in palette if c not in used])
    for label in labels:
        if label not in colors:
            colors[label] = NOISE_COLOR if label == NOISE_LABEL else next(free, None) or palette[
                len(colors) % len(palette)
            ]
    return colors
