"""The served page around the dashboard: a header bar, a sidebar that scrolls inside itself and
the main area, as one plain Panel layout.

No template: Panel's FastListTemplate, with its web components and scripts, cost 0.5-0.7 s of
every page load (``python -m benchmarks.bench_page --bare``: a bare Panel page in and out of
the template), and a plain layout loads nothing beyond Bokeh's and Panel's own files, all from
the server. The header's button shows and hides the sidebar in the browser alone.

>>> served_page("bulk_panel", main=[dashboard_main], sidebar=[labelling, tools]).servable()
"""
from __future__ import annotations

import html
from typing import Sequence

import panel as pn

__all__ = ["ACCENT", "HEADER_PX", "SYSTEM_FONTS", "served_page"]

ACCENT = "#3f6fb5"
SYSTEM_FONTS = 'system-ui, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", "Liberation Sans", sans-serif'
#: the header bar's height in pixels; below it, the page is the window's height
HEADER_PX = 44
#: the document's own style: no margin (the page is exactly the window), the system's fonts
PAGE_CSS = f"body {{ margin: 0; font-family: {SYSTEM_FONTS}; }}"
BELOW_HEADER = f"calc(100vh - {HEADER_PX}px)"


def _use_page_css() -> None:
    # per session when served (Panel keeps raw_css per document), once per process otherwise
    if PAGE_CSS not in pn.config.raw_css:
        pn.config.raw_css = [*pn.config.raw_css, PAGE_CSS]


def served_page(title: str, main: Sequence, sidebar: Sequence = (), sidebar_width: int = 300) -> pn.Column:
    """The page: ``title`` in the header (as text), ``sidebar`` on the left (scrolling inside
    itself; the header's ☰ button hides it), ``main`` filling the rest of the window."""
    _use_page_css()
    header = pn.Row(
        pn.pane.HTML(f"<span>{html.escape(title)}</span>", margin=(0, 12),
                     styles={"color": "white", "font-size": "20px", "line-height": f"{HEADER_PX}px"}),
        height=HEADER_PX, sizing_mode="stretch_width", margin=0, css_classes=["bp-header"],
        styles={"background": ACCENT, "align-items": "center"},
    )
    body = pn.Column(*main, sizing_mode="stretch_both", margin=0, styles={"height": BELOW_HEADER})
    if sidebar:
        side = pn.Column(*sidebar, width=sidebar_width, margin=0, css_classes=["bp-sidebar"],
                         styles={"height": BELOW_HEADER, "overflow-y": "auto", "box-sizing": "border-box",
                                 "padding": "6px 4px", "border-right": "1px solid #e2e2e2"})
        toggle = pn.widgets.Toggle(name="☰", value=True, width=40, height=32, margin=(6, 0, 6, 8),
                                   button_type="primary")
        toggle.jslink(side, value="visible")
        header.insert(0, toggle)
        body = pn.Row(side, body, sizing_mode="stretch_both", margin=0)
    return pn.Column(header, body, sizing_mode="stretch_both", margin=0, styles={"height": "100vh"})
