"""bulk_panel's app: ``panel serve app.py --plugins bulk_panel.views --args TARGET [OUTPUT]``.

Only wiring. TARGET is a results file, or an image folder that the pipeline runs on first
(its results go to OUTPUT, default ``<folder name>-results.parquet``); with no args, the demo
results (built from ``assets/demo`` on first use). ``--plugins bulk_panel.views`` adds the
thumbnail route (``bulk-panel serve`` does all of this for you). TARGET is the operator's
choice, never the page's: the page can rerun the pipeline only inside TARGET's folder.
"""
import sys
from pathlib import Path

import panel as pn

from bulk_panel.cli import DEMO_FOLDER
from bulk_panel.compute.results import ResultsError
from bulk_panel.session import make_dashboard

pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")

args = sys.argv[1:]
if args:
    target = Path(args[0])
    output = Path(args[1]) if len(args) > 1 else (Path(f"{target.resolve().name}-results.parquet") if target.is_dir() else None)
else:
    output = Path("demo-results.parquet")
    target = output if output.is_file() else DEMO_FOLDER
try:
    make_dashboard(target, output=output).servable(title="bulk_panel")
except ResultsError as exc:
    pn.Column("# bulk_panel", pn.pane.Alert(str(exc), alert_type="danger")).servable(title="bulk_panel")
