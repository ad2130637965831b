"""The floor of the stack: the least a Panel page with this dashboard's first screen can be,
served for ``bench_page`` to time beside the dashboard in the same run.

    python -m benchmarks.bare_page PORT N [--template fast]

One HoloViews scatter of N points with box and lasso select, beside one 8-row Tabulator, and
nothing else: no sidebar, no tabs, no template (or Panel's FastListTemplate with ``--template
fast``, the one the dashboard uses). Whatever the dashboard takes beyond this page's ready time
is its own; what this page takes, any Panel page on this machine pays.
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def page(n: int, template: str):
    import holoviews as hv
    import panel as pn

    frame = pd.DataFrame({"x": np.random.default_rng(0).random(n), "y": np.random.default_rng(1).random(n),
                          "name": [f"img_{i:07d}.jpg" for i in range(n)]})
    points = hv.Points(frame, ["x", "y"]).opts(tools=["box_select", "lasso_select"], responsive=True)
    main = pn.Row(pn.pane.HoloViews(points, sizing_mode="stretch_both"),
                  pn.widgets.Tabulator(frame.head(8), width=400), sizing_mode="stretch_both")
    if template == "fast":
        return pn.template.FastListTemplate(title="bare", main=[main], sidebar=[pn.widgets.Select(options=["a"])])
    return main


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bare_page", description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("n", type=int)
    parser.add_argument("--template", choices=["none", "fast"], default="none")
    args = parser.parse_args(argv)
    import holoviews as hv
    import panel as pn

    hv.extension("bokeh")
    pn.extension("tabulator")
    pn.serve({"bare": lambda: page(args.n, args.template)}, port=args.port, address="127.0.0.1", show=False,
             websocket_origin=[f"127.0.0.1:{args.port}"], title="bare")


if __name__ == "__main__":
    main()
