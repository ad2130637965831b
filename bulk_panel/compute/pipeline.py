"""The pipeline: folder → records → embeddings → UMAP → HDBSCAN → :class:`Results`.

>>> pipeline = Pipeline(root="photos")
>>> results = pipeline.run()                 # scans, embeds (cached), projects, clusters
>>> pipeline.clusterer.min_cluster_size = 20
>>> results = pipeline.run()                 # reruns only the clustering

Each stage keeps its fitted results; a stage reruns only when its own parameters or an
earlier stage's changed (compared by a fingerprint of the parameter values).
"""
from __future__ import annotations

import logging
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import param

from .cache import default_cache_dir, fingerprint
from .cluster import Clusterer
from .embed import Embedder, check_model_name
from .images import ImageSource
from .names import suggest_names
from .project import Projector
from .schema import cluster_label
from .results import Results, build_frame

log = logging.getLogger("bulk_panel")

#: progress(stage, done, total)
StageProgress = Callable[[str, int, int], None]

STAGES = ("scan", "embed", "project", "cluster")


class PipelineError(RuntimeError):
    """A one-line reason why the pipeline cannot run (no images, bad folder …)."""


def stage_params(stage: param.Parameterized) -> dict:
    """The values of a stage's own parameters (not ``name``)."""
    return {k: v for k, v in stage.param.values().items() if k != "name"}


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("bulk_panel", "torch", "timm", "umap-learn", "hdbscan", "numpy", "pandas", "docarray", "Pillow"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


class Pipeline(param.Parameterized):
    """Chains :class:`ImageSource`, :class:`Embedder`, :class:`Projector` and :class:`Clusterer`."""

    source = param.ClassSelector(class_=ImageSource, doc="where the images come from")
    embedder = param.ClassSelector(class_=Embedder, doc="the timm model that embeds images")
    projector = param.ClassSelector(class_=Projector, doc="UMAP map and clustering space")
    clusterer = param.ClassSelector(class_=Clusterer, doc="HDBSCAN settings")
    cache_dir = param.String(
        default=None,
        allow_None=True,
        doc=f"embedding cache folder (empty = $BULK_PANEL_CACHE, else {default_cache_dir()})",
    )

    def __init__(self, root: Optional[str] = None, **params):
        for name, cls in (("source", ImageSource), ("embedder", Embedder), ("projector", Projector), ("clusterer", Clusterer)):
            params.setdefault(name, cls())
        super().__init__(**params)
        if root is not None:
            self.source.root = str(root)
        self._tokens: dict[str, str] = {}
        self.timings_: dict[str, float] = {}

    @property
    def stages(self) -> dict[str, param.Parameterized]:
        return {"scan": self.source, "embed": self.embedder, "project": self.projector, "cluster": self.clusterer}

    def _stage_tokens(self) -> dict[str, str]:
        tokens, upstream = {}, ""
        for name, stage in self.stages.items():
            keep = getattr(stage, "result_params", None)
            values = stage_params(stage)
            if keep is not None:
                values = {k: values[k] for k in keep}
            upstream = fingerprint([upstream, name, values])
            tokens[name] = upstream
        return tokens

    def stale(self) -> list[str]:
        """The stages that the next :meth:`run` would recompute."""
        tokens = self._stage_tokens()
        out = []
        for name in STAGES:
            if out or self._tokens.get(name) != tokens[name]:
                out.append(name)
        return out

    def run(
        self, progress: Optional[StageProgress] = None, refresh: bool = False, until: str = "cluster"
    ) -> Optional[Results]:
        """Run the stale stages (all of them with ``refresh=True``) and return the results.

        ``until='embed'`` stops after embedding (``embedder.embeddings_``) and returns None.
        """
        if not self.source.root:
            raise PipelineError("no image folder given")
        root = Path(self.source.root).expanduser()
        if not root.is_dir():
            raise PipelineError(f"not a folder: {self.source.root}")
        cache_dir = Path(self.cache_dir).expanduser() if self.cache_dir else default_cache_dir()
        if not self.source.include_hidden and cache_dir.resolve().is_relative_to(root.resolve()):
            self.source.exclude = sorted(set(self.source.exclude) | {str(cache_dir.resolve())})
        tokens = self._stage_tokens()
        todo = STAGES if refresh else self.stale()
        todo = [s for s in todo if STAGES.index(s) <= STAGES.index(until)]
        report = progress or (lambda stage, done, total: None)

        if "embed" in todo:
            check_model_name(self.embedder.model)  # fail before a long scan, not after

        def scan():
            self.paths_, self.scan_skipped_ = self.source.find()
            log.info("found %d image files in %s", len(self.paths_), root)

        def embed():
            if not self.paths_:
                raise PipelineError(f"no image files in {root}")
            self.embedder.fit(root, self.paths_, cache_dir, progress=lambda d, n: report("embed", d, n))
            if not len(self.embedder.paths_):
                raise PipelineError(f"none of the {len(self.paths_)} image files in {root} could be used")

        work = {
            "scan": scan,
            "embed": embed,
            "project": lambda: self.projector.fit(self.embedder.embeddings_),
            "cluster": lambda: self.clusterer.fit(self.projector.cluster_space_),
        }
        for stage in STAGES:
            if stage in todo:
                start = time.perf_counter()
                report(stage, 0, 1)
                work[stage]()
                self.timings_[stage] = time.perf_counter() - start
                report(stage, 1, 1)
        self._tokens.update({s: tokens[s] for s in STAGES[: STAGES.index(until) + 1]})
        self.ran_ = [s for s in STAGES if s in todo]
        return self.results() if until == "cluster" else None

    def _label_names(self) -> list[str]:
        """The initial label of every row: suggested cluster names, or 'cluster N'; 'noise'."""
        classes = self.embedder.classes_ if self.clusterer.suggest_names else None
        self.cluster_names_ = suggest_names(self.clusterer.labels_, classes)
        return [self.cluster_names_.get(int(c), cluster_label(c)) for c in self.clusterer.labels_]

    def results(self) -> Results:
        """The :class:`Results` of the last run."""
        emb, clu = self.embedder, self.clusterer
        frame = build_frame(
            emb.paths_,
            emb.hashes_,
            emb.sizes_,
            self.projector.xy_,
            clu.labels_,
            clu.probabilities_,
            clu.outlier_scores_,
            self._label_names(),
        )
        skipped = pd.DataFrame(
            [tuple(s) for s in list(self.scan_skipped_) + list(emb.skipped_)], columns=["path", "reason"]
        )
        n_clusters = int(len(set(clu.labels_.tolist()) - {-1}))
        meta = {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "image_root": str(Path(self.source.root).expanduser().resolve()),
            "model": emb.model,
            "weights": emb.weights_,
            "params": {
                attr: stage_params(getattr(self, attr)) for attr in ("source", "embedder", "projector", "clusterer")
            },
            "min_cluster_size_used": int(clu.min_cluster_size_),
            "cluster_names": {str(k): v for k, v in self.cluster_names_.items()},
            "counts": {
                "found": len(self.paths_) + len(self.scan_skipped_),
                "used": len(frame),
                **emb.counts_,
                "skipped": len(skipped),
                "clusters": n_clusters,
                "noise": int((clu.labels_ == -1).sum()),
            },
            "timings": {k: round(v, 3) for k, v in self.timings_.items()},
            "versions": _versions(),
            "host": {"machine": platform.machine(), "cpus": os.cpu_count()},
        }
        return Results(
            frame=frame,
            skipped=skipped,
            meta=meta,
            _embeddings=emb.embeddings_,
            _cluster_coords=np.asarray(self.projector.cluster_space_, np.float32),
        )
