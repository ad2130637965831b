"""The server layer: what a served page needs beyond the views.

- :mod:`.routes`: the Tornado routes (``ROUTES``): thumbnails and the streamed images zip;
- :mod:`.session`: one session's page from the operator's target (:func:`session_page`);
- :mod:`.target`: what ``app.py`` and ``bulk-panel serve`` open (:func:`resolve_target`);
- :mod:`.jupyter`: :func:`explore`, the same dashboard inline in a notebook;
- the shared caches the routes read (:func:`shared_thumbnails`, :func:`shared_exports`,
  :func:`shared_results`) come from :mod:`bulk_panel.views.shared`, where the views write them.

    panel serve app.py --plugins bulk_panel.server --args photos/    # ROUTES added as a plugin
    pn.serve({"bulk_panel": lambda: session_page("results.parquet")}, extra_patterns=ROUTES)

Names are imported on first use, so the command line reads :mod:`.target` without Panel.
"""
from importlib import import_module

_EXPORTS = {
    "ROUTES": "bulk_panel.server.routes",
    "ThumbnailHandler": "bulk_panel.server.routes",
    "ZipExportHandler": "bulk_panel.server.routes",
    "error_page": "bulk_panel.server.session",
    "make_dashboard": "bulk_panel.server.session",
    "prepare_server": "bulk_panel.server.session",
    "session_page": "bulk_panel.server.session",
    "explore": "bulk_panel.server.jupyter",
    "DEMO_RESULTS": "bulk_panel.server.target",
    "Target": "bulk_panel.server.target",
    "add_allow_root": "bulk_panel.server.target",
    "allowed_roots": "bulk_panel.server.target",
    "app_args": "bulk_panel.server.target",
    "resolve_target": "bulk_panel.server.target",
    "shared_exports": "bulk_panel.views.shared",
    "shared_results": "bulk_panel.views.shared",
    "shared_thumbnails": "bulk_panel.views.shared",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bulk_panel.server' has no attribute {name!r}")
