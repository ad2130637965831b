"""The ``bulk-panel`` command line. Its flags are generated from the pipeline stages' parameters.

    bulk-panel run FOLDER [-o results.parquet] [--model NAME] [--min-cluster-size N] ...
    bulk-panel demo

Exit status: 0 ok, 1 failure (one-line message), 2 usage error.
"""
from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import param

# numba keeps compiled code (UMAP's …) on disk here; set before anything imports numba
os.environ.setdefault(
    "NUMBA_CACHE_DIR", str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bulk_panel" / "numba")
)

from . import DEMO_FOLDER  # noqa: E402
from .compute.stages import DEFAULT_TEXT, STAGE_PARAMETERS, build_stages, flag_name  # noqa: E402
from .server.target import add_allow_root, allowed_roots, resolve_target  # noqa: E402

__all__ = [
    "CommandError", "DEFAULT_PORT", "DEMO_FOLDER", "build_pipeline", "listen", "main", "make_parser", "open_browser",
    "stage_values", "summary",
]

log = logging.getLogger("bulk_panel")

DEFAULT_PORT = 5006  # bulk-panel serve without --port: this one, else the next free one
PORT_TRIES = 100


class UsageError(Exception):
    pass


class CommandError(Exception):
    """A one-line reason why a command cannot go on (exit status 1)."""


def _flag_for(stage: str, cls: type, name: str, parser: argparse.ArgumentParser) -> None:
    p = cls.param[name]
    flag = flag_name(name)
    default = p.default
    said = DEFAULT_TEXT.get(name, "auto" if default is None else default)
    help_text = f"{p.doc} (default: {said})"
    kwargs: dict = {"dest": f"{stage}.{name}", "default": argparse.SUPPRESS, "help": help_text}
    if isinstance(p, param.Boolean):
        kwargs["action"] = argparse.BooleanOptionalAction
    elif isinstance(p, param.Selector):
        kwargs["choices"] = p.objects
    elif isinstance(p, param.Integer):
        kwargs["type"] = int
        kwargs["metavar"] = "N"
    elif isinstance(p, param.Number):
        kwargs["type"] = float
        kwargs["metavar"] = "F"
    else:
        kwargs["metavar"] = name.split("_")[-1].upper()
    parser.add_argument(flag, **kwargs)


def add_pipeline_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per exposed stage parameter, grouped by stage."""
    for stage, (cls, names) in STAGE_PARAMETERS.items():
        group = parser.add_argument_group(f"{cls.__name__} ({stage})")
        for name in names:
            _flag_for(stage, cls, name, group)
    parser.add_argument(
        "--cache-dir", default=None, help="embedding cache folder (default: $BULK_PANEL_CACHE or ~/.cache/bulk_panel)"
    )
    parser.add_argument(
        "--refit", action="store_true",
        help="fit a new map even when the new images could be placed into the saved one "
        "(that happens when at most 10%% of the images are new to it)",
    )


def stage_values(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The stage parameters given as flags: stage → parameter → value (flags left out: absent)."""
    return {
        stage: {n: getattr(args, f"{stage}.{n}") for n in names if hasattr(args, f"{stage}.{n}")}
        for stage, (_cls, names) in STAGE_PARAMETERS.items()
    }


def checked_stages(args: argparse.Namespace) -> dict:
    """The stages configured from parsed flags; a bad value → UsageError."""
    try:
        return build_stages(stage_values(args))
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from exc


def build_pipeline(args: argparse.Namespace, root: Path):
    """A :class:`Pipeline` configured from parsed flags; bad values → UsageError."""
    from .compute.pipeline import Pipeline

    stages = checked_stages(args)
    return Pipeline(root=str(root), cache_dir=args.cache_dir, incremental=not getattr(args, "refit", False), **stages)


class _Bars:
    """tqdm progress bars, one per stage; as a context manager, log lines printed meanwhile go
    above the bar (``tqdm.write``) instead of into it, and the bars close on exit."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bars = {}
        self._redirect = None

    def __enter__(self) -> "_Bars":
        if self.enabled:
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self._redirect is not None:
            self._redirect.__exit__(*exc)
            self._redirect = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage != "embed":
            self.close()
            return
        if total <= 1:  # the stage's start/end markers, not an image count
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, unit="img", file=sys.stderr)
        bar.update(done - bar.n)

    def close(self):
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


def summary(results, output: Path, elapsed: float) -> str:
    """The human summary printed after a run."""
    c, t = results.meta["counts"], results.meta["timings"]
    used = max(c["used"], 1)
    lines = [
        f"images found     {c['found']}",
        f"  embedded       {c['embedded']}",
    ]
    identical = c.get("identical", 0)
    if identical:
        noun = "file" if identical == 1 else "files"
        lines.append(f"  identical      {identical} {noun} with the same content as another file here (embedded once)")
    lines += [
        f"  from cache     {c['cached']}",
        f"  skipped        {c['skipped']}",
    ]
    for path, reason in results.skipped[["path", "reason"]].itertuples(index=False):
        lines.append(f"    {path!r}: {reason}")
    lines += [
        f"clusters         {c['clusters']} (min cluster size {results.meta['min_cluster_size_used']})",
        f"noise            {c['noise']} ({100 * c['noise'] / used:.1f}%)",
        "time             " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()) + f"; total {elapsed:.1f}s",
        f"model            {results.meta['model']} ({results.meta['weights']})",
        f"results          {output}",
    ]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace, root: Path) -> int:
    """Run the pipeline on ``root``, save the results (and CSV), print the summary."""
    pipeline = build_pipeline(args, root)
    start = time.perf_counter()
    with _Bars(not args.quiet) as bars:
        results = pipeline.run(progress=bars)
    output = Path(args.output)
    results.save(output, rows_per_part=getattr(args, "rows_per_part", None))
    if args.csv:
        results.to_csv(args.csv, seed_columns=args.seed_csv)
    print(summary(results, output, time.perf_counter() - start))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the dashboard on results, or on a folder (the page runs the pipeline first), with the
    pipeline flags as the page's pipeline settings."""
    from .compute.results import load_results

    target = resolve_target(args.target, args.output)
    if not target.images:
        load_results(target.path, lazy=True)  # fail here, with a one-line message, rather than in every session
    checked_stages(args)  # a bad value: a usage error now, not a broken page later
    try:
        roots = allowed_roots(args.allow_root)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    import panel as pn

    from .server.routes import ROUTES
    from .server.session import prepare_server, session_page

    pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")
    prepare_server(target)  # the results read and, for a datashaded map, its kernels compiled before the first page
    page = dict(output=target.output, allowed_roots=roots, cache_dir=args.cache_dir, settings=stage_values(args),
                incremental=not args.refit)

    def bind(port: int):
        return pn.serve(
            {"bulk_panel": lambda: session_page(target.path, **page)},
            port=port,
            address=args.address,
            show=False,
            start=False,
            verbose=False,
            extra_patterns=ROUTES,
            websocket_origin=[f"{args.address}:{port}", f"localhost:{port}"],
            title="bulk_panel",
        )

    logging.getLogger("bokeh.server.server").setLevel(logging.WARNING)  # its "Starting …" line, once per port tried
    server = listen(bind, args.address, args.port)
    url = f"http://{args.address}:{server.port}/bulk_panel"
    moved = f"port {DEFAULT_PORT} is in use; " if args.port is None and server.port != DEFAULT_PORT else ""
    print(f"bulk_panel: {moved}serving {args.target or target.path} on {url}", file=sys.stderr)
    if args.show:  # in a thread: a terminal browser (no display) blocks until it quits
        threading.Thread(target=open_browser, args=(url,), name="bulk-panel-browser", daemon=True).start()
    server.start()
    server.io_loop.start()  # until Ctrl+C (Panel's SIGINT handler stops the loop)
    return 0


def listen(bind: Callable[[int], Any], address: str, port: Optional[int]) -> Any:
    """The server that ``bind(port)`` makes, once it listens: on ``port`` when one is given
    (in use → a one-line error naming it and ``--port``), else on the first free port from
    ``DEFAULT_PORT`` up.

    >>> server = listen(lambda p: pn.serve(app, port=p, start=False, show=False), "127.0.0.1", None)
    """
    candidates = [port] if port is not None else range(DEFAULT_PORT, DEFAULT_PORT + PORT_TRIES)
    for candidate in candidates:
        try:
            return bind(candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise CommandError(f"cannot listen on {address}:{candidate}: {exc.strerror or exc}") from exc
            if port is not None:
                raise CommandError(
                    f"port {port} on {address} is in use: choose another with --port N, "
                    "or leave --port out to take the next free port"
                ) from exc
    raise CommandError(
        f"ports {DEFAULT_PORT}-{DEFAULT_PORT + PORT_TRIES - 1} on {address} are all in use: choose one with --port N"
    )


def open_browser(url: str) -> bool:
    """Open ``url`` in the user's web browser; where there is none, say so on one line.

    >>> open_browser("http://127.0.0.1:5006/bulk_panel")
    """
    import webbrowser

    try:
        opened = webbrowser.get().open(url, new=2)
    except webbrowser.Error:  # no runnable browser on this machine
        opened = False
    if not opened:
        print(f"bulk_panel: could not open a web browser here; open {url} in one", file=sys.stderr)
    return bool(opened)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Cluster quality against first-level folder names: defaults vs the seed's recipe."""
    import json

    from .compute.evaluate import evaluate_recipes

    for flag in ("actions", "page"):
        if getattr(args, flag) < 1:
            raise UsageError(f"--{flag} must be at least 1, not {getattr(args, flag)}")
    pipeline, truth = _embedded_with_truth(args)
    rows = evaluate_recipes(pipeline.embedder.embeddings_, truth, seed=pipeline.projector.seed)
    names = _name_match(pipeline.embedder.classes_, rows[0]["labels"], truth)  # rows[0]: bulk_panel's defaults
    labelling = None
    if args.labelling:
        from .compute.evaluate import evaluate_labelling

        labelling = evaluate_labelling(pipeline.embedder.embeddings_, truth, rows[0]["labels"], actions=args.actions,
                                       page=args.page, methods=("logistic", "knn"))
    for row in rows:
        row.pop("labels")
    if args.json:
        print(json.dumps({"folder": str(args.folder), "model": pipeline.embedder.model, "classes": len(set(truth)),
                          "rows": rows, "names": names, "labelling": labelling}, indent=2))
        return 0
    print(f"{len(truth)} images in {len(set(truth))} folders, model {pipeline.embedder.model}")
    print(f"{'recipe':<12}{'ARI':>7}{'NMI':>7}{'clusters':>10}{'noise':>8}{'time':>8}")
    for r in rows:
        print(f"{r['recipe']:<12}{r['ari']:7.3f}{r['nmi']:7.3f}{r['clusters']:10d}{100 * r['noise']:7.1f}%{r['seconds']:7.1f}s")
    if labelling is not None:
        _print_labelling(labelling)
    if names is not None:
        print(f"suggested names match the majority folder for {names['matched']} of {names['clusters']} clusters "
              f"({100 * names['image_rate']:.0f}% of clustered images); by agreement:")
        for row in names["by_agreement"]:
            precision = "-" if row["precision"] is None else f"{row['precision']:.2f}"
            print(f"  agreement >= {100 * row['min_agreement']:3.0f}%:  {row['matched']}/{row['clusters']} right "
                  f"(precision {precision}), {100 * row['images']:.0f}% of clustered images")
    return 0


def _embedded_with_truth(args: argparse.Namespace):
    """The pipeline of ``args.folder`` run until its embeddings, and each image's first-level
    folder (the true groups); a usage error with fewer than two such folders."""
    from .compute.evaluate import folder_truth

    pipeline = build_pipeline(args, Path(args.folder))
    with _Bars(not args.quiet and not args.json) as bars:
        pipeline.run(progress=bars, until="embed")
    truth = folder_truth(pipeline.embedder.paths_)
    if len(set(truth)) < 2:
        raise UsageError(f"{args.folder}: evaluation needs images in at least two first-level folders")
    return pipeline, truth


def cmd_bench(args: argparse.Namespace) -> int:
    """Map + clusters at scale: the defaults (a sample laid out above Projector.layout_rows
    images) vs laying out every image, side by side on the same points."""
    import json
    import statistics

    from .compute.evaluate import SCALE_RECIPES, scale_recipes

    for flag, least in (("points", 2), ("orders", 1)):
        if getattr(args, flag) < least:
            raise UsageError(f"--{flag} must be at least {least}, not {getattr(args, flag)}")
    pipeline, truth = _embedded_with_truth(args)
    real = min(len(truth), args.points)
    header = f"{'recipe':<13}{'order':>6}{'map':>9}{'clusters':>10}{'total':>9}{'ARI':>8}{'NMI':>7}{'groups':>8}{'noise':>8}"

    def line(r: dict) -> str:
        return (f"{r['recipe']:<13}{r['order']:>6}{r['map_seconds']:8.1f}s{r['cluster_seconds']:9.1f}s{r['seconds']:8.1f}s"
                f"{r['ari']:8.3f}{r['nmi']:7.3f}{r['clusters']:8d}{100 * r['noise']:7.1f}%")

    if not args.json:
        print(f"{args.points:,} points: {real:,} images of {args.folder} in {len(set(truth))} folders"
              + (f" and {args.points - real:,} jittered copies" if args.points > real else "")
              + f"; ARI, NMI, groups and noise on the {real:,} images; model {pipeline.embedder.model}")
        print(header)
    recipes = {"bulk_panel": {"projector": {"layout_rows": pipeline.projector.layout_rows}, "clusterer": {}},
               **{k: v for k, v in SCALE_RECIPES.items() if k != "bulk_panel"}}
    rows = scale_recipes(pipeline.embedder.embeddings_, truth, args.points, args.orders, recipes, seed=pipeline.projector.seed,
                         report=(lambda r: None) if args.json else (lambda r: print(line(r), flush=True)))
    means = {}
    for name in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == name]
        means[name] = {key: statistics.fmean(r[key] for r in mine)
                       for key in ("map_seconds", "cluster_seconds", "seconds", "ari", "nmi", "noise")}
        means[name].update(recipe=name, order="mean", clusters=round(statistics.fmean(r["clusters"] for r in mine)),
                           ari_min=min(r["ari"] for r in mine))
    if args.json:
        print(json.dumps({"folder": str(args.folder), "points": args.points, "real": real, "rows": rows,
                          "means": means}, indent=2))
        return 0
    print("over", args.orders, "order" if args.orders == 1 else "orders")
    for m in means.values():
        print(line(m) + f"  (ARI min {m['ari_min']:.3f})")
    first, *others = means.values()
    for other in others:
        print(f"{first['recipe']} takes {first['seconds'] / max(other['seconds'], 1e-9):.2f}x the time of {other['recipe']}; "
              f"mean ARI {first['ari']:.3f} vs {other['ari']:.3f}")
    return 0


def _print_labelling(report: dict) -> None:
    """The labelling loop's curves as a table: accuracy after every fifth action."""
    ceiling, marks = report["ceiling"], list(range(0, report["actions"] + 1, 5))
    print(f"labelling: a person's actions (name a cluster, or a page of {report['page']} suggestions); "
          f"kNN ceiling {ceiling:.3f} (every true label known)")
    print(f"{'approach':<30}" + "".join(f"{m:>7}" for m in marks) + f"{'0.8x at':>9}{'0.9x at':>9}")
    for name, run in report["approaches"].items():
        accuracy = {row["action"]: row["accuracy"] for row in run["curve"]}
        reach = ["never" if run[key] is None else str(run[key]) for key in ("to_0.8", "to_0.9")]
        print(f"{name:<30}" + "".join(f"{accuracy[m]:7.3f}" for m in marks) + f"{reach[0]:>9}{reach[1]:>9}")


def _name_match(classes, labels, truth) -> Optional[dict]:
    """How often the default recipe's suggested names match the folders, overall and by
    agreement threshold (None without an ImageNet head or without Debian's WordNet data)."""
    from .compute.names import WORDNET_NOUNS, name_match_rate

    if classes is None or not WORDNET_NOUNS.exists():
        return None
    return name_match_rate(labels, classes, truth)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulk-panel", description="Explore, cluster and label large image collections."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_outputs(p, default_output):
        p.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
        p.add_argument(
            "-o", "--output", default=default_output,
            help=f"results file; folders missing on its path are created (default: {default_output})",
        )
        p.add_argument(
            "--csv", default=None, metavar="PATH", help="also write the rows as CSV (folders missing on its path are created)"
        )
        p.add_argument(
            "--rows-per-part", type=int, default=None, metavar="N",
            help="write the results as a folder of Parquet parts of N rows (each a complete results file; Dask can read them part by part)",
        )
        p.add_argument(
            "--seed-csv", action="store_true", help="write the CSV in the seed app's columns text,x,y,filename,color"
        )
        add_pipeline_flags(p)

    run = sub.add_parser("run", help="embed, map and cluster a folder of images", description="Embed, map and cluster a folder of images into a results file.")
    run.add_argument("folder", help="folder of images (searched recursively)")
    with_outputs(run, "results.parquet")
    demo = sub.add_parser("demo", help="run the pipeline on the bundled demo images", description="Run the pipeline on the 300 demo images shipped in the package (bulk_panel/demo).")
    with_outputs(demo, "demo-results.parquet")
    evaluate = sub.add_parser(
        "evaluate",
        help="score clusters against first-level folder names (defaults vs the seed's recipe)",
        description="Treat first-level folder names as ground truth and print ARI, NMI, clusters, "
        "noise share and time for bulk_panel's defaults and the seed app's recipe on the same embeddings, "
        "and how often the defaults' suggested cluster names match the folders, by agreement threshold.",
    )
    evaluate.add_argument("folder", help="folder whose first-level subfolders are the true groups")
    evaluate.add_argument("--json", action="store_true", help="print JSON for machines")
    evaluate.add_argument("--labelling", action="store_true",
                          help="also simulate a person labelling every image: naming clusters alone, and with "
                          "learning from the labels given and pages of the least certain suggestions")
    evaluate.add_argument("--actions", type=int, default=30, help="the simulated person's actions (default 30)")
    evaluate.add_argument("--page", type=int, default=50, help="suggestions per page (default 50)")
    evaluate.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    add_pipeline_flags(evaluate)
    bench = sub.add_parser(
        "bench",
        help="time map + clusters at scale: the defaults vs laying out every image",
        description="Grow a folder's embeddings to --points with jittered copies of them (each keeps its "
        "folder) and time map + clusters for bulk_panel's defaults (above the projector's layout_rows, a "
        "sample laid out and the others placed into it) and for laying out every image, side by side on "
        "the same points, with ARI and NMI on the folder's own images, for each order of the rows and "
        "their mean.",
    )
    bench.add_argument("folder", help="folder whose first-level subfolders are the true groups")
    bench.add_argument("--points", type=int, default=1_000_000, help="points mapped (default 1,000,000)")
    bench.add_argument("--orders", type=int, default=1,
                       help="draws of the copies, each in its own row order (default 1; ARI moves with the order)")
    bench.add_argument("--json", action="store_true", help="print JSON for machines")
    bench.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines")
    add_pipeline_flags(bench)
    serve = sub.add_parser(
        "serve",
        help="open results (or a folder, run first) in the dashboard",
        description="Serve the dashboard on a results file, or on a folder (the pipeline runs first). The "
        "pipeline flags set the page's pipeline: its first run on a folder, and the runs started from the page.",
    )
    serve.add_argument(
        "target", nargs="?", default=None,
        help="results file or image folder (default: the demo: demo-results.parquet when made, else its images)",
    )
    serve.add_argument(
        "-o", "--output", default=None,
        help="results file of the page's pipeline runs (default for a folder: <folder name>-results.parquet)",
    )
    serve.add_argument(
        "--port", type=int, default=None,
        help=f"port; one given here must be free (default: {DEFAULT_PORT}, or the next free port above it)",
    )
    serve.add_argument("--address", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument(
        "--show", action="store_true",
        help="open the page in a web browser once the server listens (says so when there is no browser)",
    )
    serve.add_argument("-q", "--quiet", action="store_true", help="no log lines")
    add_allow_root(serve)
    add_pipeline_flags(serve)
    from .share import add_parser as add_share_parser

    add_share_parser(sub)  # bulk-panel share RESULTS -o site/ (handled by args.handler)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    from .compute.embed import EmbedError
    from .compute.pipeline import PipelineError
    from .compute.results import ResultsError

    try:
        if getattr(args, "handler", None) is not None:
            return args.handler(args)
        if args.command == "run":
            return cmd_run(args, Path(args.folder))
        if args.command == "evaluate":
            return cmd_evaluate(args)
        if args.command == "bench":
            return cmd_bench(args)
        if args.command == "serve":
            return cmd_serve(args)
        if args.command == "demo":
            if not DEMO_FOLDER.is_dir():
                raise PipelineError(f"demo images not found at {DEMO_FOLDER}")
            return cmd_run(args, DEMO_FOLDER)
    except UsageError as exc:
        parser.error(str(exc))
    except (CommandError, EmbedError, PipelineError, ResultsError, OSError) as exc:
        print(f"bulk-panel: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bulk-panel: interrupted; embeddings computed so far are cached", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
