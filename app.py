"""bulk_panel's app: ``panel serve app.py --plugins bulk_panel.views --args results.parquet``.

Only wiring: the store and the dashboard are built per session; ``--plugins bulk_panel.views``
adds the thumbnail route (``bulk-panel serve`` does all of this for you). The results file is
the operator's choice (the first ``--args``, default ``demo-results.parquet``), never the
page's: a client cannot make the server open another file.
"""
import sys

import panel as pn

from bulk_panel.compute.results import ResultsError
from bulk_panel.state import ResultsStore
from bulk_panel.views import Dashboard

pn.extension("tabulator", notifications=True, sizing_mode="stretch_width")

path = sys.argv[1] if len(sys.argv) > 1 else "demo-results.parquet"
try:
    Dashboard(store=ResultsStore.from_path(path)).servable(title="bulk_panel")
except ResultsError as exc:
    pn.Column("# bulk_panel", pn.pane.Alert(str(exc), alert_type="danger")).servable(title="bulk_panel")
