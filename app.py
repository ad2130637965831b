"""bulk_panel's app: ``panel serve app.py --plugins bulk_panel.views --args TARGET [OUTPUT] [--allow-root DIR]``.

Only wiring. TARGET is a results file, or an image folder that the pipeline runs on first
(its results go to OUTPUT, default ``<folder name>-results.parquet``); with no args, the demo
results (built from ``bulk_panel/demo`` on first use). ``--plugins bulk_panel.views`` adds the
thumbnail route (``bulk-panel serve`` does all of this for you). TARGET and ``--allow-root``
are the operator's choice, never the page's: the page can rerun the pipeline only inside
TARGET's folder and the allowed roots. An unreadable results file gives a page saying so.
"""
import sys
from pathlib import Path

import panel as pn

from bulk_panel.cli import DEMO_FOLDER
from bulk_panel.compute.results import is_results_folder
from bulk_panel.session import allowed_roots, app_args, error_page, session_page
from bulk_panel.views import warm_datashader

warm_datashader()  # once per server process: the map's kernels compile beside the first page

pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")

args = app_args(sys.argv[1:])
if args.target:
    target = Path(args.target)
    images = target.is_dir() and not is_results_folder(target)  # else results: a file or a folder of parts
    output = Path(args.output) if args.output else (Path(f"{target.resolve().name}-results.parquet") if images else None)
else:
    output = Path("demo-results.parquet")
    target = output if output.is_file() else DEMO_FOLDER
try:
    roots = allowed_roots(args.allow_root)
except ValueError as exc:
    error_page(str(exc), headline="The server was started with a bad --allow-root.").servable(title="bulk_panel")
else:
    session_page(target, output=output, allowed_roots=roots).servable(title="bulk_panel")
