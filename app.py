"""bulk_panel's app: ``panel serve app.py --plugins bulk_panel.server --args TARGET [OUTPUT] [--allow-root DIR]``.

Only wiring. TARGET is a results file, or an image folder that the pipeline runs on first
(its results go to OUTPUT, default ``<folder name>-results.parquet``); with no args, the demo
(its results when made, else its images: ``bulk_panel/demo``). The target is resolved as
``bulk-panel serve`` resolves it (:func:`bulk_panel.server.resolve_target`), which does all of
this for you. ``--plugins bulk_panel.server`` adds the thumbnail and zip routes. TARGET and
``--allow-root`` are the operator's choice, never the page's: the page can rerun the pipeline
only inside TARGET's folder and the allowed roots. An unreadable results file gives a page
saying so.
"""
import sys

import panel as pn

from bulk_panel.server.session import error_page, prepare_server, session_page
from bulk_panel.server.target import allowed_roots, app_args, resolve_target

pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")

args = app_args(sys.argv[1:])
target = resolve_target(args.target, args.output)
prepare_server(target, first_page=False)  # results read once per process; datashader warmed only for a large map
try:
    roots = allowed_roots(args.allow_root)
except ValueError as exc:
    error_page(str(exc), headline="The server was started with a bad --allow-root.").servable(title="bulk_panel")
else:
    session_page(target.path, output=target.output, allowed_roots=roots).servable(title="bulk_panel")
