"""Small widget helpers every view uses: untrusted text shown as text, buttons, sections and
tabs that fill on first open.

>>> text_pane(store.param.message)          # a file name or label never becomes live HTML
>>> button("Undo", store.undo, variant="outline")
"""
from __future__ import annotations

import html
from typing import Callable

import panel as pn

__all__ = ["button", "on_demand", "tabs_on_demand", "text_pane"]


def text_pane(text, **params) -> pn.pane.Str:
    """A ``Str`` pane that shows untrusted ``text`` (a file name, a label) as text, never as HTML.

    ``text`` is a string or a reference to one (a parameter, a bound function). Panel 1.9's
    ``Str`` pane wraps its text in ``<pre>`` without escaping it, so a file named
    ``<img src=x onerror=...>.png`` would run; the text is HTML-escaped here first.

    >>> text_pane(store.param.message)
    """
    def escaped(value) -> str:
        return html.escape("" if value is None else str(value), quote=False)

    if isinstance(text, str):
        return pn.pane.Str(escaped(text), **params)
    return pn.pane.Str(pn.bind(escaped, text), **params)


def button(label: str, on_click: Callable, **kw) -> pn.widgets.Button:
    button = pn.widgets.Button(label=label, **kw)
    button.on_click(lambda event: on_click())
    return button


def on_demand(title: str, content) -> pn.Card:
    """A collapsed section whose content is rendered the first time it is opened, so the first
    page holds none of its models (a Card's hidden content would be sent and drawn anyway)."""
    card = pn.Card(title=title, collapsed=True, sizing_mode="stretch_width", margin=(5, 0))

    def fill(event) -> None:
        if not event.new and not card.objects:
            card.objects = [content]

    card.param.watch(fill, "collapsed")
    return card


def tabs_on_demand(*tabs: tuple[str, object], **params) -> pn.Tabs:
    """Tabs whose content (after the first tab's) joins the page the first time its tab opens,
    then stays. Panel's ``dynamic=True`` keeps a hidden tab's models outside the document, and
    an update to one of those points the page's shared stylesheets at cdn.holoviz.org."""
    holders = [tabs[0][1]] + [pn.Column(sizing_mode="stretch_width") for _ in tabs[1:]]
    layout = pn.Tabs(*[(title, holder) for (title, _), holder in zip(tabs, holders)], **params)

    def fill(event) -> None:
        if event.new > 0 and not holders[event.new].objects:
            holders[event.new].objects = [tabs[event.new][1]]

    layout.param.watch(fill, "active")
    return layout
