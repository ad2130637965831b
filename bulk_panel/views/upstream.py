"""Every private part of Panel that bulk_panel relies on, in one place (the numba, umap-learn,
pynndescent and hdbscan ones are in ``bulk_panel/compute/upstream.py``). A change fails with
``UpstreamChanged`` (library, installed version, the thing, what it breaks) when the views are
imported; ``tests/test_upstream.py`` checks every item below, and ``pyproject.toml`` bounds
Panel to the releases checked.

Checked against panel 1.9.4.

- ``panel.theme.fast.Fast._resources``: the Fast design's resources, a dict with the keys
  ``font`` (Open Sans from fonts.googleapis.com) and ``js_modules`` (among them
  ``fast-design``: ``js/fast_design.js``, a path relative to the class). ``OfflineFast``
  (``views/dashboard.py``) copies it without the font and with ``fast-design`` named in full
  (:func:`offline_fast_resources`).
- ``ResourceComponent.resolve_resources`` resolves a relative resource under the lower-cased
  class name (``offlinefast/js/...``, which Panel does not serve): hence the full name.
- the file ``bundled/fast/js/fast_design.js`` under ``panel.io.resources.CDN_DIST`` (in the
  package: ``panel/dist/bundled/fast/js/fast_design.js``), which Panel's server serves locally.
- If these change: the served page asks fonts.googleapis.com for the font again, or the Fast
  design's module is not found and the page stays unstyled; with the keys gone, importing the
  views raises.
"""
from __future__ import annotations

from ..compute.upstream import UpstreamChanged

#: the Panel release every item above was checked against
PANEL_CHECKED = "1.9.4"
#: the Fast design's module, as Panel's distribution bundles it
FAST_DESIGN_MODULE = "bundled/fast/js/fast_design.js"


def _changed(thing: str, problem: str) -> UpstreamChanged:
    return UpstreamChanged("panel", thing, problem,
                           "the served page would load its font from fonts.googleapis.com or miss the Fast design's "
                           "module", checked=PANEL_CHECKED, where="bulk_panel/views/upstream.py")


def fast_resources() -> dict:
    """Panel's ``Fast._resources``, checked for the keys :func:`offline_fast_resources` changes."""
    from panel.theme.fast import Fast

    resources = getattr(Fast, "_resources", None)
    if not isinstance(resources, dict):
        raise _changed("panel.theme.fast.Fast._resources", "is not a dict")
    for key in ("font", "js_modules"):
        if key not in resources:
            raise _changed("panel.theme.fast.Fast._resources", f"has no {key!r} key")
    if "fast-design" not in resources["js_modules"]:
        raise _changed('panel.theme.fast.Fast._resources["js_modules"]', "has no 'fast-design' module")
    return resources


def offline_fast_resources() -> dict:
    """``Fast._resources`` without the web font, and with the Fast design's module named in
    full (a relative name would resolve under the subclass's name): every file the page loads
    then comes from the server itself."""
    from panel.io.resources import CDN_DIST

    resources = fast_resources()
    return {
        **resources,
        "font": {},
        "js_modules": {**resources["js_modules"], "fast-design": f"{CDN_DIST}{FAST_DESIGN_MODULE}"},
    }
