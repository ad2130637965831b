"""What a served page opens, as the operator named it at launch: one rule for ``app.py``
(``panel serve``) and ``bulk-panel serve``.

>>> resolve_target("photos")                 # Target(path=…/photos, output=…/photos-results.parquet, images=True)
>>> resolve_target("results.parquet")        # Target(path=…/results.parquet, output=None, images=False)
>>> resolve_target(None)                     # the demo: its results when made, else its images
>>> app_args(["photos", "--allow-root", "/data"])

Light on purpose (no Panel): the command line builds its parser from it.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

from .. import DEMO_FOLDER
from ..compute.results import is_results_folder

__all__ = ["DEMO_RESULTS", "Target", "add_allow_root", "allowed_roots", "app_args", "resolve_target"]

#: the demo's results file, in the working folder: made on the first served demo, reused after
DEMO_RESULTS = "demo-results.parquet"


class Target(NamedTuple):
    """A resolved target: ``path`` (absolute), ``output`` (where a pipeline run's results go;
    None: nowhere) and ``images`` (True: an image folder the page runs the pipeline on first)."""

    path: Path
    output: Optional[Path]
    images: bool


def resolve_target(target: Optional[str | Path] = None, output: Optional[str | Path] = None) -> Target:
    """The served target and where its runs' results go.

    - an image folder: the pipeline runs when the page opens; its results go to ``output``,
      default ``<folder name>-results.parquet`` in the working folder;
    - a results file or folder of parts: opened as it is; page runs write to ``output`` if
      given, else nowhere ("Save labels" writes into the results file);
    - nothing: the demo, its results (:data:`DEMO_RESULTS`) when they exist, else its images.
    """
    if target is None:
        demo = Path(output if output is not None else DEMO_RESULTS)
        target, output = (demo if demo.is_file() else DEMO_FOLDER), demo
    path = Path(target).expanduser()
    images = path.is_dir() and not is_results_folder(path)  # else results: a file or a folder of parts
    if images and output is None:
        output = f"{path.resolve().name}-results.parquet"
    return Target(path.resolve(), Path(output).expanduser().resolve() if output is not None else None, images)


def add_allow_root(parser: argparse.ArgumentParser) -> None:
    """The repeatable ``--allow-root DIR`` flag of ``bulk-panel serve`` and ``app.py``."""
    parser.add_argument(
        "--allow-root", dest="allow_root", action="append", default=[], metavar="DIR",
        help="a further folder the page may run the pipeline in (repeatable); the folder, or the "
        "results' image folder, named on the command line is always allowed, nothing else is",
    )


def allowed_roots(dirs: Sequence[str]) -> list[Path]:
    """The ``--allow-root`` folders, resolved; a missing one is a one-line ValueError naming it."""
    roots = []
    for d in dirs:
        path = Path(d).expanduser()
        if not path.is_dir():
            raise ValueError(f"--allow-root {d!r}: not a folder")
        roots.append(path.resolve())
    return roots


def app_args(argv: Sequence[str]) -> argparse.Namespace:
    """``app.py``'s arguments: ``TARGET [OUTPUT] [--allow-root DIR ...]`` (as ``--args`` gives them).

    >>> app_args(["photos", "--allow-root", "/data"])
    """
    parser = argparse.ArgumentParser(prog="app.py", description="bulk_panel's app for `panel serve ... --args`.")
    parser.add_argument("target", nargs="?", default=None, help="results file or image folder (default: the demo)")
    parser.add_argument(
        "output", nargs="?", default=None,
        help="results file of the page's pipeline runs (default for a folder: <folder name>-results.parquet)",
    )
    add_allow_root(parser)
    return parser.parse_args(list(argv))
