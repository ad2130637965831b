"""The columns of a results frame and the names of its labels — no heavy imports.

The dashboard, the static page and the results reader need these names but not DocArray
(which imports torch); :mod:`.records` builds the DocArray schema from the same list.
"""
from __future__ import annotations

NOISE = -1
NOISE_LABEL = "noise"

# One row of the results frame; ImageRecord (records.py) declares the same fields.
RECORD_COLUMNS = [
    "path", "content_hash", "width", "height", "x", "y",
    "cluster", "probability", "outlier_score", "label",
]


#: where a label came from (the results' ``label_source`` column): a cluster (the initial
#: neutral name), a person (a relabel, a rename, an accepted suggestion) or a prediction learnt
#: from the person's labels (with its ``confidence``, 0..1; a person's labels have 1, a
#: cluster's none)
LABEL_SOURCES = ("cluster", "person", "prediction")


def cluster_label(cluster: int) -> str:
    """The readable initial label of a cluster id: ``cluster_label(3) == 'cluster 3'``."""
    return NOISE_LABEL if cluster == NOISE else f"cluster {int(cluster)}"
