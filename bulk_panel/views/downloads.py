"""Downloads: CSV and Parquet of the rows, a zip of the selected images.

>>> Downloads(store=store)                            # Jupyter: FileDownload buttons
>>> Downloads(store=store, exports_url=EXPORTS_URL)   # served: the zip streams from the server
"""
from __future__ import annotations

import asyncio
import secrets

import panel as pn
import param

from ..state import ResultsStore
from .shared import shared_exports

__all__ = ["Downloads", "EXPORTS_URL"]

#: where the server's zip route answers (``server.routes.ZipExportHandler``)
EXPORTS_URL = "/exports/"


class Downloads(pn.viewable.Viewer):
    """CSV / Parquet of the selection or of all rows, and a zip of the selected images.

    The bytes are made on click and sent to the browser; nothing is written on the server.
    Served (``exports_url`` set), the zip streams from the server's route
    (:class:`~bulk_panel.server.routes.ZipExportHandler`); without a server route (Jupyter) it
    is a FileDownload of a spooled file.
    """

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    scope = param.Selector(default="selection", objects=["selection", "all"], doc="Which rows the tables hold.")
    exports_url = param.String(
        default=None, allow_None=True,
        doc="URL prefix of the streamed zip route (ROUTES); None: a FileDownload button instead.",
    )

    def __init__(self, **params):
        super().__init__(**params)
        store = self.store
        self.csv = pn.widgets.FileDownload(callback=lambda: store.to_csv_bytes(self.scope), filename="labels.csv",
                                           label="CSV", sizing_mode="stretch_width")
        self.parquet = pn.widgets.FileDownload(callback=lambda: store.to_parquet_bytes(self.scope),
                                               filename="labels.parquet", label="Parquet",
                                               sizing_mode="stretch_width")
        if self.exports_url:
            self.zip = self._streamed_zip_button()
        else:
            self.zip = pn.widgets.FileDownload(callback=self._zip, filename="images.zip",
                                               label="Images (zip)", sizing_mode="stretch_width")

    def _streamed_zip_button(self) -> pn.widgets.Button:
        token = secrets.token_urlsafe(24)
        exports = shared_exports()
        exports[token] = self.store
        if pn.state.curdoc is not None and pn.state.curdoc.session_context is not None:
            pn.state.on_session_destroyed(lambda context: exports.pop(token, None))
        self.zip_url = f"{self.exports_url}{token}/images.zip"
        button = pn.widgets.Button(
            label="Images (zip)", sizing_mode="stretch_width",
            disabled=param.rx(self.store.selected_rows).rx.pipe(lambda rows: len(rows) == 0),
        )
        # an <a download> click: the browser saves the stream; the page itself never navigates
        button.js_on_click(args={"url": self.zip_url}, code="""
            const a = document.createElement('a'); a.href = url; a.download = 'images.zip';
            document.body.appendChild(a); a.click(); a.remove();""")
        button.on_click(lambda event: setattr(
            self.store, "message", f"Zip of {len(self.store.selected_rows()):,} images: streaming to the browser."))
        return button

    async def _zip(self):
        # written off the event loop into a spooled temporary file (bounded memory while writing)
        self.store.message = "Packing the selected images…"
        fh = await asyncio.to_thread(self.store.to_zip_file)
        self.store.message = f"Zip of {len(self.store.selected_rows()):,} images ready."
        return fh

    def __panel__(self):
        return pn.Column(
            pn.widgets.RadioButtonGroup.from_param(self.param.scope, sizing_mode="stretch_width"),
            pn.Row(self.csv, self.parquet, sizing_mode="stretch_width"),
            self.zip,
            sizing_mode="stretch_width",
        )
