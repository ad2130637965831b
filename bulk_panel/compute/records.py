"""The DocArray record of one image, and conversions between DocLists and frames.

DocArray is the interchange format; the pipeline's hot paths work on pandas frames and
numpy arrays (building a DocList costs ~40 µs a record), so conversions live here.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import pandas as pd
from docarray import BaseDoc, DocList
from docarray.typing import NdArray

from .schema import NOISE, NOISE_LABEL, RECORD_COLUMNS, cluster_label

__all__ = ["NOISE", "NOISE_LABEL", "RECORD_COLUMNS", "ImageRecord", "cluster_label", "docs_from_frame", "frame_from_docs"]


class ImageRecord(BaseDoc):
    """One image of a collection and everything the pipeline learned about it.

    >>> ImageRecord(path="cats/tom.jpg").cluster
    -1
    """

    path: str  # relative to the image root, '/'-separated
    content_hash: str = ""
    width: int = 0
    height: int = 0
    embedding: Optional[NdArray] = None
    x: float = math.nan
    y: float = math.nan
    cluster: int = NOISE
    probability: float = 0.0
    outlier_score: float = 0.0
    label: str = ""


assert RECORD_COLUMNS == [
    name for name in ImageRecord.model_fields if name not in ("id", "embedding")
], "schema.RECORD_COLUMNS and ImageRecord disagree"


def docs_from_frame(
    frame: pd.DataFrame, embeddings: Optional[np.ndarray] = None
) -> DocList[ImageRecord]:
    """Build a ``DocList[ImageRecord]`` from a results frame (and aligned embeddings)."""
    columns = [c for c in RECORD_COLUMNS if c in frame.columns]
    rows = frame[columns].to_dict("records")
    if embeddings is not None:
        for row, vector in zip(rows, embeddings):
            row["embedding"] = vector
    return DocList[ImageRecord]([ImageRecord(**row) for row in rows])


def frame_from_docs(docs: DocList[ImageRecord]) -> tuple[pd.DataFrame, Optional[np.ndarray]]:
    """The inverse of :func:`docs_from_frame`: a frame and a float32 embedding matrix (or None)."""
    frame = pd.DataFrame(
        {c: [getattr(d, c) for d in docs] for c in RECORD_COLUMNS}
    )
    vectors = [d.embedding for d in docs]
    if docs and all(v is not None for v in vectors):
        embeddings = np.stack([np.asarray(v, dtype=np.float32) for v in vectors])
    else:
        embeddings = None
    return frame, embeddings
