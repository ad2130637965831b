"""Running the pipeline for one session: folder checks, a worker thread, progress, messages.

State layer (no Panel import). :class:`PipelineRunner` owns a :class:`~bulk_panel.compute.pipeline.Pipeline`,
the folder the user typed and the roots the operator allowed; :meth:`PipelineRunner.run` checks the
folder and runs the stale stages in a worker thread, reporting ``stage``, ``progress`` (0..1) and a
one-line ``message`` that views bind to.

>>> runner = PipelineRunner(folder="~/photos", on_results=store.load)   # Jupyter: any folder
>>> runner = PipelineRunner(folder="cats", allowed_roots=["/data"])     # served: only under /data
>>> runner.run(); runner.wait()
>>> runner.pipeline.clusterer.min_cluster_size = 10
>>> runner.run()                                                         # re-clusters only
"""
from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import param

log = logging.getLogger("bulk_panel")

#: share of the progress bar each stage takes when it runs
STAGE_WEIGHTS = {"scan": 0.05, "embed": 0.75, "project": 0.15, "cluster": 0.05}
STAGE_MESSAGES = {
    "scan": "scanning the folder",
    "embed": "embedding images",
    "project": "making the map (UMAP)",
    "cluster": "clustering (HDBSCAN)",
}


class FolderRefused(ValueError):
    """A folder the user may not run the pipeline on; the one-line message names it."""


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs as one space), cut to ``limit`` characters with '…'.

    >>> one_line(f"cannot read {path}: {exc}")
    """
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _shown(folder: str) -> str:
    """The folder as typed, quoted on one line (names can hold newlines or markup)."""
    return one_line(repr(folder), 200)


def _real(path: str | Path, base: Optional[Path] = None) -> Path:
    """``path`` with ``~`` expanded, made absolute against ``base`` (or the working folder),
    ``..`` and every symlink resolved."""
    p = Path(os.path.expanduser(str(path)))
    if not p.is_absolute() and base is not None:
        p = base / p
    return Path(os.path.realpath(p))


def resolve_folder(folder: str, allowed_roots: Optional[Sequence[str | Path]] = None) -> Path:
    """The real path of ``folder`` if the user may run on it, else :class:`FolderRefused`.

    With ``allowed_roots`` the real path (after ``~``, ``..`` and symlinks) must lie inside one
    of them; a relative folder is taken relative to the first root. Without roots (Jupyter,
    where the user is the operator) any existing folder is fine.

    >>> resolve_folder("cats", ["/data"])    # → Path('/data/cats')
    """
    text = (folder or "").strip()
    if not text:
        raise FolderRefused("no folder given: type the folder of images to run on")
    if "\x00" in text:
        raise FolderRefused(f"not a folder name: {_shown(folder)}")
    roots = [_real(r) for r in (allowed_roots or []) if str(r).strip()]
    try:
        real = _real(text, roots[0] if roots else None)
    except (OSError, ValueError, RuntimeError) as exc:  # symlink loops, bad names
        raise FolderRefused(f"cannot open folder {_shown(folder)}: {one_line(exc)}") from exc
    if roots and not any(real == r or real.is_relative_to(r) for r in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise FolderRefused(f"refused folder {_shown(folder)}: it is outside the allowed folders ({allowed})")
    # existence is checked only after the containment check, so nothing is said about outside paths
    if not real.exists():
        raise FolderRefused(f"folder not found: {_shown(folder)}")
    if not real.is_dir():
        raise FolderRefused(f"not a folder: {_shown(folder)}")
    return real


def _default_pipeline():
    from ..compute.pipeline import Pipeline

    return Pipeline()


class PipelineRunner(param.Parameterized):
    """Runs a session's :class:`Pipeline` on a user-typed folder, off the event loop.

    ``run()`` validates ``folder`` against ``allowed_roots`` and starts a worker thread that runs
    the stale stages (all of them, rescanning, when nothing is stale) and updates ``stage``,
    ``progress`` and ``message``. On success ``results`` is set and ``on_results(results)``
    is called (through ``dispatch`` when set, e.g. on the session's event loop). Errors the user
    can cause end up in ``message`` and ``error``; the pipeline keeps whatever it computed (and
    embeddings stay in the cache), so a corrected rerun starts from there.

    >>> runner = PipelineRunner(folder="photos", on_results=store.load)
    >>> runner.run(); runner.wait(); runner.message
    'done: 24 images, 3 clusters, 0 skipped in 21.4 s'
    """

    pipeline = param.ClassSelector(
        class_=param.Parameterized, doc="The session's Pipeline (stages, their parameters and fitted results)."
    )
    folder = param.String(default="", doc="The image folder typed by the user ('~' is expanded).")
    allowed_roots = param.List(
        default=None,
        allow_None=True,
        doc="Folders the operator allowed at launch; the run folder must lie inside one. None or empty: any folder.",
    )
    on_results = param.Callable(default=None, doc="Called with the Results after a successful run (e.g. ResultsStore.load).")
    dispatch = param.Callable(
        default=None,
        doc="Runs a zero-argument callable where the UI may change (a view sets the session's event loop); "
        "None: called in the worker thread.",
    )
    running = param.Boolean(default=False, constant=True, doc="Whether a run is in progress.")
    stage = param.String(default="", constant=True, doc="The stage running now: scan, embed, project or cluster.")
    progress = param.Number(default=0.0, bounds=(0.0, 1.0), constant=True, doc="Share of the run done, 0..1.")
    message = param.String(default="", constant=True, doc="One line about the run: what it does, how it ended.")
    error = param.String(default="", constant=True, doc="The one-line reason the last run failed or was refused; empty if not.")
    results = param.Parameter(default=None, constant=True, doc="The Results of the last successful run.")
    process = param.Boolean(
        default=False,
        doc="Run the pipeline in a process of its own, at a lower priority (a served page: the other "
            "sessions stay responsive); kept for the next runs. False: in a thread of this process.",
    )

    def __init__(self, **params):
        if params.get("pipeline") is None:
            params["pipeline"] = _default_pipeline()
        super().__init__(**params)
        if not self.folder and getattr(self.pipeline.source, "root", ""):
            self.folder = str(self.pipeline.source.root)
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._worker = None  # the PipelineProcess, made on the first run with process=True

    # ---------------------------------------------------------------------------------
    def _set(self, **values) -> None:
        with param.edit_constant(self):
            self.param.update(**values)

    def _fail(self, text: str) -> None:
        line = one_line(text)
        self._set(message=line, error=line)

    def run(self, refresh: bool = False) -> Optional[threading.Thread]:
        """Check the folder and start the run in a worker thread (returned); None if refused.

        ``refresh=True`` reruns every stage (rescan; embeddings still come from the cache).
        """
        if not self._lock.acquire(blocking=False):
            self._set(message=f"already running ({self.stage or 'starting'}); wait for it to finish")
            return None
        try:
            root = resolve_folder(self.folder, self.allowed_roots)
        except FolderRefused as exc:
            self._lock.release()
            self._fail(str(exc))
            return None
        except BaseException:
            self._lock.release()
            raise
        self._set(running=True, stage="", progress=0.0, error="", message=f"starting on {root}")
        thread = threading.Thread(target=self._work, args=(root, refresh), name="bulk_panel-run", daemon=True)
        self._thread = thread
        try:
            thread.start()
        except BaseException as exc:
            self._finish_failed(f"could not start the run: {exc}")
            raise
        return thread

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the current run (and its result delivery) is over; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        while self.running:
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    # ---------------------------------------------------------------------------------
    def _progress_reporter(self, todo: Sequence[str]) -> Callable[[str, int, int], None]:
        weights = {s: STAGE_WEIGHTS[s] for s in todo}
        total_w = sum(weights.values()) or 1.0
        before, acc = {}, 0.0
        for s in todo:
            before[s] = acc
            acc += weights[s]

        def report(stage: str, done: int, total: int) -> None:
            if stage not in weights:
                return
            frac = min(max(done / total, 0.0), 1.0) if total else 0.0
            value = min((before[stage] + weights[stage] * frac) / total_w, 1.0)
            text = STAGE_MESSAGES.get(stage, stage)
            if stage == "embed" and total > 1:
                text = f"embedding images {done:,}/{total:,}"
            values = {"stage": stage, "message": text}
            if value >= self.progress:
                values["progress"] = value
            self._set(**values)

        return report

    def close(self) -> None:
        """Stop the pipeline's process, if it has one (when the session ends)."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def _run_pipeline(self, todo: Sequence[str], refresh: bool):
        report = self._progress_reporter(todo)
        if not self.process:
            return self.pipeline.run(progress=report, refresh=refresh)
        from .process import PipelineProcess

        if self._worker is None:
            self._worker = PipelineProcess()
        return self._worker.run(self.pipeline, refresh, report)

    def _work(self, root: Path, refresh: bool) -> None:
        from ..compute.embed import EmbedError
        from ..compute.pipeline import STAGES, PipelineError
        from .process import PipelineProcessError

        start = time.perf_counter()
        try:
            pipeline = self.pipeline
            if str(pipeline.source.root) != str(root):
                pipeline.source.root = str(root)
            stale = pipeline.stale()
            if not stale:
                refresh = True  # nothing changed: the user asks for a rescan
            todo = list(STAGES) if refresh else stale
            results = self._run_pipeline(todo, refresh)
        except (PipelineError, EmbedError, PipelineProcessError) as exc:
            self._finish_failed(str(exc))
            return
        except Exception as exc:  # keep the session alive whatever happens
            log.exception("pipeline run on %s failed", root)
            self._finish_failed(f"run failed: {type(exc).__name__}: {exc}")
            return
        elapsed = time.perf_counter() - start
        counts = results.meta.get("counts", {})
        ran = ", ".join(getattr(pipeline, "ran_", todo))
        done = (
            f"done: {counts.get('used', len(results.frame)):,} images, {counts.get('clusters', 0)} clusters, "
            f"{counts.get('skipped', 0)} skipped in {elapsed:.1f} s (ran: {ran})"
        )
        self._set(results=results, progress=1.0, stage="")
        self._deliver(results, done)

    def _deliver(self, results, done: str) -> None:
        def deliver():
            try:
                if self.on_results is not None:
                    self.on_results(results)
            except Exception as exc:
                log.exception("loading the results failed")
                self._finish_failed(f"the run finished but its results could not be shown: {exc}")
                return
            self._finish(message=done)

        if self.dispatch is None:
            deliver()
            return
        try:
            self.dispatch(deliver)
        except Exception as exc:  # e.g. the session has gone
            log.exception("could not hand the results to the session")
            self._finish_failed(f"the run finished but its results could not be shown: {exc}")

    def _finish(self, **values) -> None:
        self._set(running=False, stage="", **values)
        if self._lock.locked():
            self._lock.release()

    def _finish_failed(self, text: str) -> None:
        line = one_line(text)
        self._finish(message=line, error=line)
