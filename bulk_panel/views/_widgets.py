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

WRAP_CSS = "pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; }"


def text_pane(text, **params) -> pn.pane.Str:
    """A ``Str`` pane that shows untrusted ``text`` (a file name, a label) as text, never as HTML.

    ``text`` is a string or a reference to one (a parameter, a bound function). Panel 1.9's
    ``Str`` pane wraps its text in ``<pre>`` without escaping it, so a file named
    ``<img src=x onerror=...>.png`` would run; the text is HTML-escaped here first.

    >>> text_pane(store.param.message)
    """
    def escaped(value) -> str:
        return html.escape("" if value is None else str(value), quote=False)

    # long lines wrap inside the pane's width (Panel's <pre> would run past it, clipped)
    params["stylesheets"] = [*params.get("stylesheets", []), WRAP_CSS]
    if isinstance(text, str):
        return pn.pane.Str(escaped(text), **params)
    return pn.pane.Str(pn.bind(escaped, text), **params)


def button(label: str, on_click: Callable, **kw) -> pn.widgets.Button:
    button = pn.widgets.Button(label=label, **kw)
    button.on_click(lambda event: on_click())
    return button


def _made(content):
    """``content``, or what it makes when it is a function of no arguments (a view built on first use)."""
    return content() if callable(content) and not isinstance(content, pn.viewable.Viewable) else content


def on_demand(title: str, content, collapsed: bool = True) -> pn.Card:
    """A section whose content (a view, or a function that makes one) is built and rendered the
    first time it is opened, so the first page holds none of its models (a Card's hidden
    content would be sent and drawn anyway)."""
    card = pn.Card(title=title, collapsed=collapsed, sizing_mode="stretch_width", margin=(5, 0))

    def fill(event=None) -> None:
        if not card.collapsed and not card.objects:
            card.objects = [_made(content)]

    card.param.watch(fill, "collapsed")
    fill()
    return card


def tabs_on_demand(*tabs: tuple[str, object], **params) -> pn.Tabs:
    """Tabs whose content (a view, or a function that makes one; after the first tab's) is built
    and joins the page the first time its tab opens, then stays. Panel's ``dynamic=True`` keeps
    a hidden tab's models outside the document, and an update to one of those points the page's
    shared stylesheets at cdn.holoviz.org."""
    holders = [_made(tabs[0][1])] + [pn.Column(sizing_mode="stretch_width") for _ in tabs[1:]]
    layout = pn.Tabs(*[(title, holder) for (title, _), holder in zip(tabs, holders)], **params)

    def fill(event) -> None:
        if event.new > 0 and not holders[event.new].objects:
            holders[event.new].objects = [_made(tabs[event.new][1])]

    layout.param.watch(fill, "active")
    return layout
