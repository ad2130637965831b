"""The shared static page (``bulk-panel share``): results as a page that runs in the browser.

- :mod:`.build`: ``bulk-panel share`` and :func:`build_site`: the bundle, the wheel, ``panel convert``;
- :mod:`.bundle`: the folder of precomputed results the page opens (no Panel);
- :mod:`.notice`: the page's message where the CDNs it loads from cannot be reached;
- :mod:`.app`: the page itself, the dashboard's state and views on the bundle (imported by the
  page, never here: this package stays free of Panel for the command line).

>>> build_site("results.parquet", "site")
"""
from .build import MAX_POINTS, add_parser, build_site, cmd_share, prepare_sources, write_bundle, write_wheel
from .bundle import BUNDLE_DIR, BundledThumbnails, describe, read_bundle
from .notice import ShareError, add_offline_notice, page_hosts

__all__ = [
    "BUNDLE_DIR", "BundledThumbnails", "MAX_POINTS", "ShareError", "add_offline_notice", "add_parser", "build_site",
    "cmd_share", "describe", "page_hosts", "prepare_sources", "read_bundle", "write_bundle", "write_wheel",
]
