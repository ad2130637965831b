"""What every session of a process shares: the thumbnail cache, the export tokens and the
results files read. Immutable per key, or keyed by something unguessable; the views write
into them and the server's routes (:mod:`bulk_panel.server.routes`) read them.

>>> shared_thumbnails().get(digest)
>>> store = ResultsStore(results=shared_results("results.parquet"))
"""
from __future__ import annotations

import os
import weakref
from pathlib import Path

import panel as pn

from ..compute.results import Results, load_results
from ..compute.thumbs import ShownThumbnails, ThumbnailCache
from ..state import ResultsStore

__all__ = ["shared_exports", "shared_results", "shared_thumbnails"]


def shared_thumbnails() -> ThumbnailCache:
    """The process-wide thumbnail cache (immutable per hash, shared by all sessions)."""
    return pn.state.as_cached("bulk_panel.thumbnails", ShownThumbnails)


def shared_results(path: str | Path) -> Results:
    """The results file at ``path``, read once per process and version (path + mtime + size).

    Sessions on the same file share this object and never change it: each
    :class:`~bulk_panel.state.ResultsStore` works on its own copy and a save writes a new
    file version (a new key, replacing the old one in the cache), so a second session at 1M
    points does not read the file again and the cache holds one version per file.
    A folder of parts opens lazily (its text columns stay on disk, read for the rows shown).

    >>> store = ResultsStore(results=shared_results("results.parquet"))
    """
    path = Path(path).resolve()
    try:
        stat = os.stat(path)
    except OSError:
        return load_results(path, lazy=True)  # raises ResultsError naming the file
    prefix = f"bulk_panel.results:{path}:"
    key = f"{prefix}{stat.st_mtime_ns}:{stat.st_size}"
    # one version per file (as_cached keys are (key, *keyword items)); sessions on an older one keep their reference
    for old in [k for k in pn.state.cache if isinstance(k, tuple) and str(k[0]).startswith(prefix) and k[0] != key]:
        pn.state.cache.pop(old, None)
    return pn.state.as_cached(key, load_results, path=path, lazy=True)


def shared_exports() -> "weakref.WeakValueDictionary[str, ResultsStore]":
    """Process-wide: export token → the store of the session that owns it.

    Each served Downloads view registers its session's store under an unguessable token; the
    entry goes when the session does (weak values, and removed on session end).
    """
    return pn.state.as_cached("bulk_panel.exports", weakref.WeakValueDictionary)
