"""bulk_panel's app: `panel serve app.py --args results.parquet`.

The dashboard itself is still being built; for now this shows a summary of a results file.
"""
import sys

import panel as pn

import bulk_panel

pn.extension()

path = sys.argv[1] if len(sys.argv) > 1 else "demo-results.parquet"
try:
    results = bulk_panel.load_results(path)
    body = pn.Column(
        f"## {len(results.frame)} images, {results.frame.cluster.max() + 1} clusters",
        pn.pane.DataFrame(results.frame.label.value_counts().rename("images").to_frame()),
    )
except bulk_panel.ResultsError as exc:
    body = pn.pane.Alert(str(exc), alert_type="danger")

pn.Column("# bulk_panel", body).servable(title="bulk_panel")
