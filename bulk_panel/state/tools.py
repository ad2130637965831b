"""Acting on clusters: more like this, outliers, duplicates, the cluster gallery, splitting.

>>> store.focus = 42; store.more_like_this(); store.similar
>>> store.select_outliers(0.02)
>>> store.duplicates()                   # groups with keep marks
>>> store.split_selection()              # HDBSCAN again on the selected rows (undoable)
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import param

from .labels import Labels, clean_label
from .memo import shared_memo
from .selection import EMPTY

__all__ = ["ClusterTools"]


class ClusterTools(Labels):
    """The cluster tools of one session (a part of :class:`ResultsStore`)."""

    similar = param.Array(default=EMPTY, doc="Rows most like the focused image ('more like this'), nearest first.")
    similar_scores = param.Array(default=np.empty(0), doc="Cosine similarity of each row in ``similar``.")
    similar_k = param.Integer(default=12, bounds=(1, 500), doc="How many images 'more like this' finds.")
    outlier_share = param.Number(
        default=0.02, bounds=(0.0, 1.0), doc="'Show outliers' selects this share of rows with the highest GLOSH score."
    )
    duplicate_threshold = param.Number(
        default=0.97, bounds=(0.5, 1.0), doc="Cosine similarity from which two images count as near-duplicates."
    )

    def more_like_this(self, row: Optional[int] = None, k: Optional[int] = None) -> int:
        """Find the ``k`` images most like ``row`` (default: the focused one) by cosine similarity
        of their embeddings; they go to ``similar`` (drawn on the map and in the gallery).

        >>> store.focus = 42; store.more_like_this(); store.similar
        """
        row = self.focus if row is None else row
        if row is None or not 0 <= row < self.n_rows:
            self.message = "Click an image first (a table row or the map)."
            return 0
        index = self.neighbour_index()
        if index is None:
            self.message = "These results hold no embeddings: 'more like this' needs them."
            return 0
        rows, sims = index.query(int(row), k=self.similar_k if k is None else int(k))
        self.param.update(similar=np.asarray(rows, dtype=np.int64), similar_scores=np.asarray(sims, dtype=float))
        name = self.file_names([row])[0]
        self.message = f"{len(rows)} images most like {name!r}."
        return len(rows)

    def select_similar(self) -> int:
        """Select the focused image and the images most like it (one click from the gallery)."""
        rows = np.asarray(self.similar, dtype=np.int64)
        if self.focus is not None:
            rows = np.concatenate([[self.focus], rows[rows != self.focus]])
        return self._select(rows)

    def neighbour_index(self):
        """The k-NN index over these results' embeddings (built once per results file and shared
        by sessions; None without embeddings)."""
        results = self.results
        if results is None:
            return None
        if results.path is not None:
            try:
                stat = Path(results.path).stat()
                return _shared_index(str(Path(results.path).resolve()), stat.st_mtime_ns, stat.st_size)
            except (OSError, ValueError):
                pass  # falls back to the in-memory vectors below
        vectors = results.embeddings
        if vectors is None or len(vectors) != self.n_rows:
            return None
        from ..compute.similar import NeighbourIndex

        return shared_memo(vectors, "neighbour index").get((), lambda: NeighbourIndex(vectors))

    def select_outliers(self, share: Optional[float] = None, include_noise: bool = True) -> int:
        """Select the ``share`` of rows with the highest GLOSH outlier score (and, by default,
        every noise point): the images that fit their cluster least."""
        if not self.n_rows:
            return 0
        share = self.outlier_share if share is None else float(share)
        scores = self.frame["outlier_score"].to_numpy(dtype=float)
        n = int(round(share * len(scores)))
        top = np.argsort(-scores, kind="stable")[:n]
        if include_noise:
            top = np.union1d(top, np.flatnonzero(self.frame["cluster"].to_numpy() < 0))
        rows = top[np.argsort(-scores[top], kind="stable")]
        count = self._select(rows)
        self.message = f"{count:,} outliers selected (top {share:.1%} by outlier score{' + noise' if include_noise else ''})."
        return count

    def duplicates(self, threshold: Optional[float] = None) -> pd.DataFrame:
        """Groups of exact (same content) and near duplicates (cosine ≥ ``threshold``), one row
        per member with ``keep`` marks (see :func:`~bulk_panel.compute.similar.duplicate_groups`),
        plus each member's current ``label``. Cached per results and threshold."""
        from ..compute.similar import duplicate_groups

        threshold = self.duplicate_threshold if threshold is None else float(threshold)

        def groups_now() -> pd.DataFrame:
            # the columns duplicate_groups reads (a lazy folder's text columns: read for this, then let go)
            frame = self.rows_frame(None, [c for c in ("path", "content_hash", "width", "height") if c in self.columns])
            if self.results is None or not self.n_rows:
                return duplicate_groups(frame, None, None)
            index = self.neighbour_index()
            vectors = index.embeddings if index is not None else None
            return duplicate_groups(frame, vectors, threshold if vectors is not None else None, index=index)

        groups = self._of_results("duplicates").get((threshold,), groups_now)
        return groups.assign(label=self.frame["label"].to_numpy()[groups["row"].to_numpy(dtype=np.int64)])

    @param.depends("frame")
    def cluster_gallery(self, k: int = 8) -> pd.DataFrame:
        """Each label's ``k`` most representative rows (highest membership probability, then lowest
        outlier score): columns ``label``, ``row``, ``rank``; labels in the chooser's order."""
        if self.frame is None or len(self.frame) == 0:
            return pd.DataFrame({"label": [], "row": [], "rank": []})
        codes, names = self.label_codes()
        order = np.argsort(codes * 4.0 + self._representativeness(), kind="stable")  # by label, best first
        starts = np.searchsorted(codes[order], np.arange(len(names) + 1))
        code_of = {label: code for code, label in enumerate(names)}
        parts = []
        for label in self.sorted_labels(self.frame):
            start, end = starts[code_of[label]], starts[code_of[label] + 1]
            rows = order[start : min(end, start + k)]
            parts.append(pd.DataFrame({"label": label, "row": rows, "rank": np.arange(len(rows))}))
        return pd.concat(parts, ignore_index=True)

    def split_selection(self, min_cluster_size: Optional[int] = None) -> int:
        """Cluster the selected rows again (HDBSCAN in the stored cluster space) and label the
        parts ``'<label> · 1'``, ``'<label> · 2'``… (noise among them keeps its label); undoable.
        Returns how many parts were found (0 or 1: nothing changed)."""
        rows = self.selected_rows()
        coords = self.results.cluster_coords if self.results is not None else None
        if coords is None or len(coords) != self.n_rows:
            coords = self.frame[["x", "y"]].to_numpy()  # results without a cluster space: the map
        if len(rows) < 10:
            self.message = "Select at least 10 points to split."
            return 0
        from ..compute.cluster import Clusterer

        clusterer = Clusterer(min_cluster_size=min_cluster_size).fit(np.asarray(coords, dtype=np.float64)[rows])
        found = clusterer.labels_  # min_cluster_size None: the pipeline's own rule for this many points
        parts = sorted(set(found.tolist()) - {-1})
        if len(parts) < 2:
            self.message = f"No split found in {len(rows):,} points (min cluster size {clusterer.min_cluster_size_})."
            return len(parts)
        current = self.frame["label"].to_numpy(dtype=object)
        base = pd.Series(current[rows]).mode().iloc[0]
        labels = current.copy()
        for number, part in enumerate(parts, start=1):
            labels[rows[found == part]] = clean_label(f"{base} · {number}")
        self._apply_labels(labels, f"{len(rows):,} points split into {len(parts)} parts of {base!r}.")
        return len(parts)


@functools.lru_cache(maxsize=2)
def _shared_index(path: str, mtime_ns: int, size: int):
    """One NeighbourIndex per results file version, shared by every session of the process
    (immutable: sessions only query it)."""
    from ..compute.results import load_results
    from ..compute.similar import NeighbourIndex

    vectors = load_results(path, lazy=True).embeddings
    if vectors is None:
        raise ValueError(f"{path}: no embeddings")
    return NeighbourIndex(vectors)
