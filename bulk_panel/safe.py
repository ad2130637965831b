"""Showing untrusted text (file names, labels, folder names) in Panel: always as text."""
from __future__ import annotations

import html

import panel as pn


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
