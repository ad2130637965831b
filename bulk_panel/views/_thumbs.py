"""Thumbnails in the views: the route's URLs or inline ``data:`` URIs, table cells, HTML grids,
and :func:`shown_hashes`, which allows the shared cache to serve exactly the rows a view shows.

Thumbnails reach the browser through the server's thumbnail route (``/thumbs/<content
hash>.jpg``, :data:`THUMBS_URL`), which serves only images a view has shown. Without the route
(a notebook, the shared static page) the views inline the thumbnails of a small selection as
``data:`` URIs.

>>> thumb_sources(shown_hashes(store, rows, thumbs), THUMBS_URL, thumbs)
"""
from __future__ import annotations

import html
from typing import Optional

import numpy as np
import pandas as pd

from ..compute.thumbs import HASH_PATTERN, ShownThumbnails, ThumbnailCache
from ..state import ResultsStore

__all__ = ["THUMBS_URL", "figures_html", "shown_hashes", "thumb_cells", "thumb_formatter", "thumb_sources"]

#: where the server's thumbnail route answers (``server.routes.ThumbnailHandler``)
THUMBS_URL = "/thumbs/"


def shown_hashes(store: ResultsStore, rows, thumbnails: Optional[ThumbnailCache],
                 frame: Optional[pd.DataFrame] = None) -> np.ndarray:
    """The content hashes of the rows at positions ``rows`` ('' without the column), for
    :func:`thumb_sources` / :func:`thumb_cells`; ``frame``: those rows, already read.

    With the shared cache (:class:`ShownThumbnails`), the images of exactly these rows are
    allowed here, so the thumbnail route and the previews serve what the page shows, and
    nothing else (checking every image of 1M results on load costs ~20 s). A plain cache has
    every image of results in memory registered on load (by the dashboard); for results whose
    paths stay on disk it registers these rows here.

    >>> thumb_sources(shown_hashes(store, rows, thumbs), THUMBS_URL, thumbs)
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if "content_hash" not in store.columns:
        return np.full(len(rows), "", dtype=object)
    results = store.results
    if (thumbnails is None or results is None or results.image_root is None
            or (not results.on_disk and not isinstance(thumbnails, ShownThumbnails))):  # registered on load
        return frame["content_hash"].to_numpy() if frame is not None else store.values("content_hash", rows)
    if frame is None:
        frame = store.rows_frame(rows, ["path", "content_hash"])
    hashes, paths = frame["content_hash"].to_numpy(), frame["path"].to_numpy()
    if isinstance(thumbnails, ShownThumbnails):
        thumbnails.allow(results.image_root, hashes, paths)
    else:  # a plain cache (a test's, a notebook's): checked now, row by row
        thumbnails.register(results.image_root, pd.DataFrame({"content_hash": hashes, "path": paths}))
    return hashes


def thumb_formatter(thumbnails_url: Optional[str], height: str) -> dict:
    """Tabulator's image formatter for a thumbnail column: a content hash → the thumbnail route,
    or (no route, Jupyter) the cell already holds a data: URI."""
    image = {"type": "image", "height": height}
    if thumbnails_url:
        image.update(urlPrefix=thumbnails_url, urlSuffix=".jpg")
    return image


def thumb_sources(hashes, thumbnails_url: Optional[str], thumbnails: Optional[ThumbnailCache]) -> list[str]:
    """An ``<img src>`` per content hash: the thumbnail route's URL, or (no route) an inline
    ``data:`` URI; '' where there is none. Hashes are checked, so a src is never markup."""
    hashes = ["" if h is None else str(h) for h in hashes]
    if thumbnails_url:
        return [f"{thumbnails_url}{h}.jpg" if HASH_PATTERN.fullmatch(h) else "" for h in hashes]
    return thumbnails.data_uris(hashes) if thumbnails is not None else [""] * len(hashes)


def thumb_cells(hashes, thumbnails_url: Optional[str], thumbnails: Optional[ThumbnailCache],
                limit: Optional[int] = None) -> list[str]:
    """A Tabulator thumbnail column (see :func:`thumb_formatter`): the content hashes when the
    route serves them, else inline ``data:`` URIs for the first ``limit`` rows ('' after)."""
    hashes = ["" if h is None else str(h) for h in hashes]
    if thumbnails_url:
        return hashes
    head = hashes if limit is None else hashes[:limit]
    return thumb_sources(head, None, thumbnails) + [""] * (len(hashes) - len(head))


def figures_html(items: list[tuple[str, str, str]], size: int = 88) -> str:
    """A wrapping grid of thumbnails: ``(src, caption, tooltip)`` each. Every text is escaped
    (file names and labels are untrusted); a missing image is an empty box."""
    figures = []
    for src, caption, tooltip in items:
        image = (f'<img src="{html.escape(src)}" loading="lazy" style="width:{size}px;height:{size}px;'
                 f'object-fit:contain;background:#f4f4f4">' if src else
                 f'<div style="width:{size}px;height:{size}px;background:#eee"></div>')
        figures.append(
            f'<figure title="{html.escape(tooltip)}" style="margin:3px;width:{size}px">{image}'
            f'<figcaption style="font-size:11px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">'
            f'{html.escape(caption)}</figcaption></figure>'
        )
    return '<div style="display:flex;flex-wrap:wrap">' + "".join(figures) + "</div>"
