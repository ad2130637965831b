"""The stage parameters a user may set: one registry that the ``bulk-panel`` flags and the
app's pipeline controls are both generated from, so the two cannot drift apart.

>>> for stage, (cls, names) in STAGE_PARAMETERS.items(): print(stage, cls.__name__, names)
>>> flag_name("n_neighbors")                                    # '--umap-neighbors'
>>> Pipeline(root="photos", **build_stages({"clusterer": {"min_cluster_size": 10}}))

To expose another parameter, add its name here: ``bulk-panel run --help`` and the sidebar's
stage cards pick it up (its ``doc=`` is the help text).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import param

from .cluster import Clusterer
from .embed import Embedder
from .images import ImageSource
from .project import Projector

__all__ = ["FLAG_ALIASES", "DEFAULT_TEXT", "STAGE_PARAMETERS", "build_stages", "flag_name"]

#: stage → (its class, the parameters a user may set), in pipeline order
STAGE_PARAMETERS: dict[str, tuple[type, Sequence[str]]] = {
    "source": (ImageSource, ("recursive", "include_hidden")),
    "embedder": (Embedder, ("model", "weights", "batch_size", "device", "workers", "dask", "max_pixels", "backend", "half",
                             "precision")),
    "projector": (Projector, ("cluster_dims", "n_neighbors", "min_dist", "metric", "pca_dims", "seed", "layout_rows")),
    "clusterer": (Clusterer, ("min_cluster_size", "min_samples", "selection_method", "epsilon", "suggest_names")),
}
#: flags spelled other than ``--name-with-dashes``
FLAG_ALIASES = {"n_neighbors": "umap-neighbors"}
#: defaults said in words: what an unset (None) parameter does (the others unset: "auto"), and
#: defaults that depend on the machine or the environment, so help and docs read the same everywhere
DEFAULT_TEXT = {
    "dask": "none: embed in this process, without Dask",
    "workers": "the number of CPU cores, at most 4",
    "backend": "$BULK_PANEL_BACKEND when set, else auto",
}


def flag_name(name: str) -> str:
    """The command-line flag of the stage parameter ``name``.

    >>> flag_name("min_cluster_size")       # '--min-cluster-size'
    """
    return "--" + FLAG_ALIASES.get(name, name.replace("_", "-"))


def build_stages(values: Optional[Mapping[str, Mapping[str, Any]]] = None) -> dict[str, param.Parameterized]:
    """One new instance per stage, with ``values`` (stage → parameter → value) set; a name the
    registry does not expose, or a bad value, raises ValueError naming it.

    >>> build_stages({"embedder": {"model": "resnet18"}})["embedder"].model    # 'resnet18'
    """
    values = dict(values or {})
    unknown = [stage for stage in values if stage not in STAGE_PARAMETERS]
    if unknown:
        raise ValueError(f"unknown stage {unknown[0]!r}: one of {', '.join(STAGE_PARAMETERS)}")
    stages = {}
    for stage, (cls, names) in STAGE_PARAMETERS.items():
        given = dict(values.get(stage, {}))
        hidden = [name for name in given if name not in names]
        if hidden:
            raise ValueError(f"{stage} has no settable parameter {hidden[0]!r}")
        stages[stage] = cls(**given)
    return stages
