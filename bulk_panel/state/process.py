"""A session's pipeline run in a process of its own, so that embedding and UMAP never hold the
server's interpreter (or its cores, at a lower priority) while other sessions select and label.

State layer (no Panel import). :class:`PipelineProcess` starts one spawned process on the first
run and keeps it, with its :class:`~bulk_panel.compute.pipeline.Pipeline`, for the next runs
until it has been idle :data:`KEEP_S` seconds: a change of clustering settings meanwhile
reclusters there without embedding or mapping again (0.1 s for the demo, against 4.5 s for a
new process, which holds about 1.1 GB once it has run: model, torch, numba, UMAP). Each run
sends the settings of the session's pipeline; the process reports progress back, writes the
results file (``<cache>/runs/<settings key>.parquet``) and the parent reads it.

>>> worker = PipelineProcess()
>>> results = worker.run(runner.pipeline, refresh=False, progress=report)   # in a worker thread
>>> worker.close()
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Callable, Optional

log = logging.getLogger("bulk_panel")

#: the fitted attributes of a Pipeline that the session's copy mirrors after a run in the process
MIRRORED = ("_tokens", "ran_", "timings_", "map_info_")
#: the process's scheduling priority above the server's (POSIX nice): sessions get the cores first
NICENESS = 10
#: seconds an idle process is kept for the session's next run, then stopped (its memory freed)
KEEP_S = 300.0


class PipelineProcessError(RuntimeError):
    """The pipeline's process stopped or could not start; the one-line message says how."""


def _settings(pipeline) -> tuple[dict, dict]:
    """(the pipeline's own parameters, each stage's parameters) as plain values to send."""
    from ..compute.pipeline import stage_params

    stages = pipeline.stages
    own = {k: v for k, v in stage_params(pipeline).items() if not any(v is s for s in stages.values())}
    return own, {name: stage_params(stage) for name, stage in stages.items()}


def _serve(conn, niceness: int) -> None:
    """The process's loop: take a run, run it, answer; until told to stop or the parent goes."""
    try:
        os.nice(niceness)
    except (AttributeError, OSError):  # not POSIX, or not allowed
        pass
    from ..compute.cache import default_cache_dir, fingerprint
    from ..compute.embed import EmbedError
    from ..compute.pipeline import Pipeline, PipelineError

    pipeline = Pipeline()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        own, stages, refresh = message
        try:
            pipeline.param.update(**own)
            for name, values in stages.items():
                pipeline.stages[name].param.update(**values)
            results = pipeline.run(progress=lambda stage, done, total: conn.send(("progress", stage, done, total)),
                                   refresh=refresh)
            cache = Path(pipeline.cache_dir).expanduser() if pipeline.cache_dir else default_cache_dir()
            path = cache / "runs" / f"{fingerprint([str(pipeline.source.root), pipeline._tokens])}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            results.save(path)
            conn.send(("done", str(path), {name: getattr(pipeline, name, None) for name in MIRRORED}))
        except (PipelineError, EmbedError) as exc:
            conn.send(("refused", type(exc).__name__, str(exc)))
        except Exception as exc:  # the parent reports it; the process serves the next run
            logging.getLogger("bulk_panel").exception("pipeline run failed")
            conn.send(("failed", type(exc).__name__, str(exc)))


class PipelineProcess:
    """One process that runs a session's pipeline; see the module's docstring."""

    def __init__(self, niceness: int = NICENESS, keep_s: Optional[float] = KEEP_S):
        self.niceness = niceness
        self.keep_s = keep_s  # None: until close()
        self._process = None
        self._conn = None
        self._lock = threading.Lock()
        self._idle: Optional[threading.Timer] = None

    @property
    def pid(self) -> Optional[int]:
        return None if self._process is None else self._process.pid

    def _started(self):
        if self._process is None or not self._process.is_alive():
            context = multiprocessing.get_context("spawn")  # no copy of the server's threads and sessions
            parent, child = context.Pipe()
            process = context.Process(target=_serve, args=(child, self.niceness), name="bulk_panel-pipeline",
                                      daemon=True)
            try:
                process.start()
            except Exception as exc:
                raise PipelineProcessError(f"could not start the pipeline's process: {exc}") from exc
            child.close()
            self._process, self._conn = process, parent
        return self._conn

    def run(self, pipeline, refresh: bool, progress: Callable[[str, int, int], None]):
        """Run ``pipeline``'s stale stages (all with ``refresh``) in the process, with its current
        settings; returns the Results and mirrors the run's fitted attributes (which stages ran,
        their tokens) onto ``pipeline``. A refusal raises the error the pipeline raised (its one
        line); a crash of the process raises :class:`PipelineProcessError`, and the next run
        starts a new process."""
        with self._lock:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            try:
                return self._run(self._started(), pipeline, refresh, progress)
            finally:
                if self.keep_s is not None and self._process is not None:
                    timer = threading.Timer(self.keep_s, lambda: self._stop_idle(timer))
                    timer.daemon = True
                    self._idle = timer
                    timer.start()

    def _stop_idle(self, timer: threading.Timer) -> None:
        # waits for the lock (a run that is ending still holds it), then stops the process unless
        # a run began since this timer was set (that run set its own timer)
        with self._lock:
            if self._idle is timer:
                self.close()

    def _run(self, conn, pipeline, refresh: bool, progress):
        from ..compute.embed import EmbedError
        from ..compute.pipeline import PipelineError
        from ..compute.results import load_results

        conn.send((*_settings(pipeline), refresh))
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                code = self._process.exitcode if self._process is not None else None
                self._process = self._conn = None
                raise PipelineProcessError(f"the pipeline's process stopped (exit code {code})") from None
            kind, *rest = message
            if kind == "progress":
                progress(*rest)
            elif kind == "done":
                path, fitted = rest
                for name, value in fitted.items():
                    setattr(pipeline, name, value)
                return load_results(path)
            else:
                error, text = rest
                if kind == "refused":
                    raise (EmbedError if error == "EmbedError" else PipelineError)(text)
                raise PipelineProcessError(f"run failed: {error}: {text}")

    def close(self, timeout: float = 5.0) -> None:
        """Stop the process (after its current run, or at once when it does not stop in ``timeout`` s)."""
        if self._idle is not None:
            self._idle.cancel()
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None:
            return
        try:
            conn.send(None)
        except (OSError, ValueError):
            pass
        process.join(timeout)
        for stop in (process.terminate, process.kill):
            if not process.is_alive():
                break
            stop()
            process.join(timeout)
