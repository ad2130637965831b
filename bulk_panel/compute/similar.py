"""Acting on similarity: more-like-this neighbours, duplicates, cluster galleries.

>>> index = NeighbourIndex(results.embeddings)
>>> rows, sims = index.query(42, k=12)            # the 12 images most like row 42
>>> duplicate_groups(results.frame, results.embeddings, threshold=0.97)
>>> gallery(results.frame, "cluster 3", k=12)     # its most representative rows

Embeddings are L2-normalised, so cosine similarity is a dot product. Below ``exact_below``
rows the neighbours are exact (blocked matrix products); above it a pynndescent index
(built once, approximate) keeps queries fast at 1M images.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

BLOCK = 4096


class NeighbourIndex:
    """k-nearest neighbours by cosine similarity over fixed embeddings."""

    def __init__(self, embeddings: np.ndarray, exact_below: int = 50_000, seed: int = 42):
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.exact = len(self.embeddings) < exact_below
        self._ann = None
        if not self.exact:
            from pynndescent import NNDescent

            self._ann = NNDescent(self.embeddings, metric="dot", n_neighbors=30, random_state=seed, low_memory=True)
            self._ann.prepare()

    def query(self, rows, k: int = 12) -> tuple[np.ndarray, np.ndarray]:
        """Neighbours of the given row(s), nearest first, the row itself excluded:
        ``(indices, similarities)``, each ``len(rows) × k`` (1-D for a single row)."""
        single = np.isscalar(rows)
        rows = np.atleast_1d(np.asarray(rows, dtype=np.int64))
        k = int(min(k, len(self.embeddings) - 1))
        if k <= 0:
            empty = np.zeros((len(rows), 0))
            return (empty[0], empty[0]) if single else (empty.astype(np.int64), empty)
        queries = self.embeddings[rows]
        if self.exact:
            sims = queries @ self.embeddings.T
            sims[np.arange(len(rows)), rows] = -np.inf
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1)
            idx = np.take_along_axis(top, order, 1)
            sim = np.take_along_axis(sims, idx, 1)
        else:
            idx, dist = self._ann.query(queries, k=k + 1)
            keep = idx != rows[:, None]
            idx = np.stack([r[m][:k] for r, m in zip(idx, keep)])
            sim = np.einsum("ij,ikj->ik", queries, self.embeddings[idx])
        return (idx[0], sim[0]) if single else (idx, sim)

    def pairs_above(self, threshold: float) -> np.ndarray:
        """All pairs ``(i, j)``, i < j, with similarity ≥ ``threshold`` (exact below the size
        limit; among the 30 approximate neighbours above it)."""
        e = self.embeddings
        found = []
        if self.exact:
            for start in range(0, len(e), BLOCK):
                sims = e[start : start + BLOCK] @ e.T
                i, j = np.nonzero(sims >= threshold)
                i = i + start
                keep = i < j
                found.append(np.stack([i[keep], j[keep]], 1))
        else:
            idx, dist = self._ann.neighbor_graph
            sims = 1.0 - dist  # pynndescent's "dot" distance is 1 - dot
            i, col = np.nonzero(sims >= threshold)
            j = idx[i, col]
            a, b = np.minimum(i, j), np.maximum(i, j)
            keep = a != b
            found.append(np.unique(np.stack([a[keep], b[keep]], 1), axis=0))
        return np.concatenate(found) if found else np.zeros((0, 2), np.int64)


def _components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component id of each of ``n`` nodes given edge ``pairs``."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def duplicate_groups(
    frame: pd.DataFrame,
    embeddings: Optional[np.ndarray] = None,
    threshold: Optional[float] = 0.97,
    index: Optional[NeighbourIndex] = None,
) -> pd.DataFrame:
    """Groups of exact duplicates (same content hash) and near-duplicates (cosine ≥ threshold).

    One row per member: ``group`` (int, from 0), ``row`` (int, position in frame), ``path``,
    ``kind`` ('exact' or 'near', text), ``similarity`` (to the kept image), ``keep`` (True for
    the member to keep: the largest image, then the shortest path). Sorted by group, kept member
    first. No groups: no rows, the same columns and types.
    """
    n = len(frame)
    codes = pd.factorize(frame["content_hash"])[0]
    first_of_hash = pd.Series(np.arange(n)).groupby(codes).transform("min").to_numpy()
    pairs = [np.stack([first_of_hash, np.arange(n)], 1)[first_of_hash != np.arange(n)]]
    if threshold is not None and embeddings is not None and n > 1:
        index = index or NeighbourIndex(embeddings)
        pairs.append(index.pairs_above(threshold))
    pairs = np.concatenate(pairs).astype(np.int64) if pairs else np.zeros((0, 2), np.int64)
    columns = ["group", "row", "path", "kind", "similarity", "keep"]
    if len(pairs) == 0:  # no groups: the same columns and types, no rows
        return pd.DataFrame(columns=columns).astype(
            {"group": "int64", "row": "int64", "path": str, "kind": str, "similarity": "float64", "keep": bool}
        )
    comp = _components(n, pairs)
    sizes = np.bincount(comp)
    members = np.flatnonzero(sizes[comp] > 1)
    out = pd.DataFrame({"component": comp[members], "row": members})
    out["path"] = frame["path"].to_numpy()[members]
    out["pixels"] = (frame["width"].to_numpy(np.int64) * frame["height"].to_numpy(np.int64))[members]
    out["pathlen"] = out["path"].str.len()
    out = out.sort_values(["component", "pixels", "pathlen"], ascending=[True, False, True], kind="stable")
    out["keep"] = ~out.duplicated("component")
    kept = out.groupby("component")["row"].transform("first").to_numpy()
    hashes = frame["content_hash"].to_numpy()
    out["kind"] = np.where(hashes[out["row"].to_numpy()] == hashes[kept], "exact", "near")
    if embeddings is not None:
        e = np.asarray(embeddings, np.float32)
        out["similarity"] = np.einsum("ij,ij->i", e[out["row"].to_numpy()], e[kept])
    else:
        out["similarity"] = np.where(out["kind"] == "exact", 1.0, np.nan)
    out["group"] = pd.factorize(out["component"])[0]
    return out[columns].reset_index(drop=True)


def gallery(frame: pd.DataFrame, label: str, k: int = 12) -> pd.DataFrame:
    """The ``k`` most representative rows of ``label``: highest membership probability first,
    then lowest outlier score."""
    members = frame[frame["label"] == label]
    order = members.sort_values(["probability", "outlier_score"], ascending=[False, True], kind="stable")
    return order.head(k)
