"""The server's own routes: thumbnails and the streamed images zip.

    panel serve app.py --plugins bulk_panel.server          # adds ROUTES
    pn.serve(apps, extra_patterns=ROUTES)

``GET /thumbs/<content hash>.jpg`` serves only images a view has shown (the shared cache,
:func:`~bulk_panel.views.shared.shared_thumbnails`); ``GET /exports/<token>/images.zip``
streams the selection of the session that holds the token
(:func:`~bulk_panel.views.shared.shared_exports`).
"""
from __future__ import annotations

import asyncio

from tornado.web import HTTPError, RequestHandler

from ..compute.thumbs import HASH_PATTERN, PREVIEW_SIZE, THUMB_SIZE, iter_image_zip
from ..views.shared import shared_exports, shared_thumbnails

__all__ = ["ROUTES", "ThumbnailHandler", "ZipExportHandler"]

_SIZES = {"thumb": THUMB_SIZE, "preview": PREVIEW_SIZE}


class ThumbnailHandler(RequestHandler):
    """``GET /thumbs/<32 hex>.jpg[?size=preview]``: the JPEG of a registered image, else 404."""

    async def get(self, digest: str) -> None:
        size = _SIZES.get(self.get_argument("size", "thumb"))
        if size is None or not HASH_PATTERN.fullmatch(digest):
            raise HTTPError(404)
        jpeg = await asyncio.to_thread(shared_thumbnails().get, digest, size)
        if jpeg is None:
            raise HTTPError(404)
        self.set_header("Content-Type", "image/jpeg")
        self.set_header("Cache-Control", "public, max-age=31536000, immutable")  # content-addressed
        self.set_header("X-Content-Type-Options", "nosniff")
        self.write(jpeg)


class ZipExportHandler(RequestHandler):
    """``GET /exports/<token>/images.zip``: the zip of that session's selected images, streamed.

    The zip is written piece by piece (one image chunk at a time, in a worker thread) and each
    piece is flushed to the browser before the next is made, so the server's memory stays
    bounded whatever the selection's size, and nothing is written on the server's disk.
    """

    async def get(self, token: str) -> None:
        store = shared_exports().get(token)
        if store is None:
            raise HTTPError(404)
        frame, root = store.zip_source()  # a snapshot, taken on the event loop
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", 'attachment; filename="images.zip"')
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")
        pieces = iter_image_zip(frame, root)
        try:
            while (piece := await asyncio.to_thread(next, pieces, None)) is not None:
                if piece:
                    self.write(piece)
                    await self.flush()  # wait until the piece has left: bounded memory
        except Exception:  # the browser went away (StreamClosedError) or a read failed
            pieces.close()
            raise


ROUTES = [
    (r"/thumbs/([0-9a-f]{32})\.jpg", ThumbnailHandler, {}),
    (r"/exports/([A-Za-z0-9_-]{20,64})/images\.zip", ZipExportHandler, {}),
]
