"""The pipeline: folder → records → embeddings → UMAP → HDBSCAN → :class:`Results`.

>>> pipeline = Pipeline(root="photos")
>>> results = pipeline.run()                 # scans, embeds (cached), projects, clusters
>>> pipeline.clusterer.min_cluster_size = 20
>>> results = pipeline.run()                 # reruns only the clustering

Each stage keeps its fitted results; a stage reruns only when its own parameters or an
earlier stage's changed (compared by a fingerprint of the parameter values).

Incremental runs: the fitted map (PCA, both UMAPs, every point's coordinates and cluster) is
saved under ``<cache>/maps/`` keyed by the image folder and the settings. When a later run
finds at most ``refit_fraction`` (10%) of its images new to that map — counting those placed
by earlier incremental runs — it places the new images with UMAP ``transform`` and assigns
them to the nearest cluster (:meth:`Clusterer.predict`); the other points keep their
coordinates and clusters, and deleted images drop out. More new images, changed settings,
``incremental=False`` (``--refit``) or a missing or unreadable map file → a full refit.
"""
from __future__ import annotations

import logging
import os
import pickle
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import pandas as pd
import param

from .cache import atomic_write, default_cache_dir, fingerprint
from .cluster import Clusterer
from .embed import Embedder, check_model_name
from .images import ImageSource
from .names import cluster_suggestions, suggestions_meta
from .project import Projector
from .schema import cluster_label
from .results import Results, build_frame

log = logging.getLogger("bulk_panel")

#: progress(stage, done, total)
StageProgress = Callable[[str, int, int], None]

STAGES = ("scan", "embed", "project", "cluster")
MAP_FORMAT, MAP_VERSION = "bulk_panel.map", 1


class PipelineError(RuntimeError):
    """A one-line reason why the pipeline cannot run (no images, bad folder …)."""


def stage_params(stage: param.Parameterized) -> dict:
    """The values of a stage's own parameters (not ``name``)."""
    return {k: v for k, v in stage.param.values().items() if k != "name"}


def _same_for_duplicates(hashes, *arrays: np.ndarray) -> list[np.ndarray]:
    """Each array with every row of a content hash set to that hash's first row's value."""
    codes = pd.factorize(pd.Series(list(hashes), dtype=object))[0]
    first = np.full(codes.max() + 1 if len(codes) else 0, -1, dtype=np.int64)
    rows = np.arange(len(codes))
    first[codes[::-1]] = rows[::-1]  # the last write per code is its first row
    return [np.asarray(a)[first[codes]] for a in arrays]


def _keep_and_add(old: np.ndarray, index: np.ndarray, new: np.ndarray, added: np.ndarray) -> np.ndarray:
    """Rows ``old[index]`` where ``new`` is False, the rows of ``added`` (in order) where it is True."""
    out = np.empty((len(index),) + old.shape[1:], old.dtype)
    out[~new] = old[index[~new]]
    out[new] = added
    return out


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
    incremental = param.Boolean(
        default=True,
        doc="place new images into the saved map when few are new (False = always refit the map)",
    )
    refit_fraction = param.Number(
        default=0.1,
        bounds=(0.0, 1.0),
        doc="refit the map instead when more than this share of its images were not in its fit",
    )

    def __init__(self, root: Optional[str] = None, **params):
        for name, cls in (("source", ImageSource), ("embedder", Embedder), ("projector", Projector), ("clusterer", Clusterer)):
            params.setdefault(name, cls())
        super().__init__(**params)
        if root is not None:
            self.source.root = str(root)
        self._tokens: dict[str, str] = {}
        self._map: Optional[dict] = None  # the saved map state last read or written
        self.timings_: dict[str, float] = {}
        self.map_info_: dict = {}

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

        map_path = cache_dir / "maps" / f"{fingerprint([str(root.resolve()), tokens['project']])}.pkl"
        placed: dict = {}

        def project():
            state = self._read_map(map_path, tokens["project"]) if self.incremental else None
            plan = self._placement(state)
            if plan is None:
                self.projector.fit(self.embedder.embeddings_)
                self.map_info_ = {"mode": "fitted", "fitted_on": len(self.embedder.paths_), "new": 0}
                return
            index, new = plan
            self.projector.restore(state["models"])
            xy, space = self.projector.transform(self.embedder.embeddings_[new])
            self.projector.xy_ = _keep_and_add(state["xy"], index, new, xy)
            self.projector.cluster_space_ = _keep_and_add(state["cluster_space"], index, new, space)
            placed.update(index=index, new=new, state=state)
            self.map_info_ = {"mode": "placed", "fitted_on": state["fitted_on"], "new": int(new.sum()),
                              "placed": state["placed"] + int(new.sum())}
            log.info("placed %d new images into the saved map (fitted on %d; --refit to refit)",
                     new.sum(), state["fitted_on"])

        def cluster():
            clustered()
            # byte-identical images (same content hash) have the same vector but, after UMAP's
            # stochastic layout, not always the same neighbours: they share the first one's cluster
            clu = self.clusterer
            clu.labels_, clu.probabilities_, clu.outlier_scores_ = _same_for_duplicates(
                self.embedder.hashes_, clu.labels_, clu.probabilities_, clu.outlier_scores_)

        def clustered():
            state = placed.get("state")
            if state is None or state["cluster"] != tokens["cluster"]:
                self.clusterer.fit(self.projector.cluster_space_, sample=getattr(self.projector, "laid_out_", None))
                return
            index, new = placed["index"], placed["new"]
            clu = self.clusterer.restore(state["cluster_space"], state["labels"], state["probabilities"],
                                         state["outlier_scores"], state["min_cluster_size"],
                                         state.get("birth_distances"))
            added = clu.predict(self.projector.cluster_space_[new])
            clu.labels_, clu.probabilities_, clu.outlier_scores_ = (
                _keep_and_add(old, index, new, a)
                for old, a in zip((state["labels"], state["probabilities"], state["outlier_scores"]), added)
            )
            clu.points_ = self.projector.cluster_space_

        work = {"scan": scan, "embed": embed, "project": project, "cluster": cluster}
        for stage in STAGES:
            if stage in todo:
                start = time.perf_counter()
                report(stage, 0, 1)
                work[stage]()
                self.timings_[stage] = time.perf_counter() - start
                report(stage, 1, 1)
        self._tokens.update({s: tokens[s] for s in STAGES[: STAGES.index(until) + 1]})
        self.ran_ = [s for s in STAGES if s in todo]
        if "cluster" in self.ran_:
            self._write_map(map_path, tokens)
        return self.results() if until == "cluster" else None

    def _read_map(self, path: Path, project_token: str) -> Optional[dict]:
        """The saved map for these settings, or None (with a one-line message) → refit."""
        if self._map is not None and self._map.get("path") == str(path):
            return self._map
        if not path.exists():
            log.info("no saved map for this folder and these settings (%s): fitting one", path)
            return None
        try:
            with open(path, "rb") as fh:
                state = pickle.load(fh)
            if state.get("format") != MAP_FORMAT or state.get("version") != MAP_VERSION:
                raise ValueError(f"format {state.get('format')!r} version {state.get('version')!r}")
            if state["project"] != project_token:
                raise ValueError("it was fitted with other settings")
        except Exception as exc:
            log.warning("saved map %s unreadable (%s): refitting", path, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return None
        state["path"] = str(path)
        return state

    def _placement(self, state: Optional[dict]) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """``(index into the saved rows, new-row mask)`` when the new images can be placed into
        the saved map, None when the map must be refitted (see the module docstring)."""
        if state is None or state["models"].get("reducer_") is None:
            return None
        # the same file → its row; a renamed or moved file → a row with its content
        row_of_file = {ph: i for i, ph in enumerate(zip(state["paths"], state["hashes"]))}
        row_of_hash = {h: i for i, h in enumerate(state["hashes"])}
        emb = self.embedder
        index = np.array(
            [row_of_file.get((p, h), row_of_hash.get(h, -1)) for p, h in zip(emb.paths_, emb.hashes_)], dtype=np.int64
        )
        new = index < 0
        unfitted = state["placed"] + int(new.sum())
        if unfitted > self.refit_fraction * state["fitted_on"]:
            log.info("%d of the %d images are new to the saved map (over %.0f%%): refitting",
                     unfitted, len(index), 100 * self.refit_fraction)
            return None
        return index, new

    def _write_map(self, path: Path, tokens: dict) -> None:
        """Save the fitted map, coordinates and clusters (atomically) for incremental reruns."""
        proj, clu = self.projector, self.clusterer
        models = proj.fitted_models()
        if models.get("reducer_") is None:
            return
        info = self.map_info_ or {"mode": "fitted", "fitted_on": len(self.embedder.paths_)}
        state = {
            "format": MAP_FORMAT, "version": MAP_VERSION, "project": tokens["project"], "cluster": tokens["cluster"],
            "models": models,
            "paths": list(self.embedder.paths_), "hashes": list(self.embedder.hashes_),
            "xy": proj.xy_, "cluster_space": proj.cluster_space_, "labels": clu.labels_,
            "probabilities": clu.probabilities_, "outlier_scores": clu.outlier_scores_,
            "min_cluster_size": int(clu.min_cluster_size_),
            "birth_distances": getattr(clu, "birth_distances_", None),
            "fitted_on": int(info["fitted_on"]), "placed": int(info.get("placed", 0)),
        }
        try:
            atomic_write(path, lambda fh: pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL))
        except OSError as exc:
            log.warning("could not save the map to %s (%s): the next run refits", path, exc)
            return
        self._map = {**state, "path": str(path)}

    def _label_names(self) -> list[str]:
        """The initial label of every row: 'cluster N', 'noise' (always neutral); the clusters'
        suggested names (when ``clusterer.suggest_names``) go to ``suggestions_``."""
        classes = self.embedder.classes_ if self.clusterer.suggest_names else None
        self.suggestions_ = cluster_suggestions(self.clusterer.labels_, classes)
        return [cluster_label(c) for c in self.clusterer.labels_]

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
            "suggestions": suggestions_meta(self.suggestions_),
            "counts": {
                "found": len(self.paths_) + len(self.scan_skipped_),
                "used": len(frame),
                **emb.counts_,
                "identical": int(emb.identical_),
                "skipped": len(skipped),
                "clusters": n_clusters,
                "noise": int((clu.labels_ == -1).sum()),
            },
            "timings": {k: round(v, 3) for k, v in self.timings_.items()},
            "map": dict(self.map_info_),
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
