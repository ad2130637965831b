"""Previews: the image under the cursor (:class:`HoverPreview`) and the focused one, large
(:class:`ImagePreview`).

>>> HoverPreview(store=store, thumbnails=thumbs); ImagePreview(store=store, thumbnails=thumbs)
"""
from __future__ import annotations

from typing import Optional

import pandas as pd
import panel as pn
import param

from ..compute.thumbs import PREVIEW_SIZE, ThumbnailCache
from ..state import ResultsStore
from ._thumbs import shown_hashes
from ._widgets import text_pane

__all__ = ["HoverPreview", "ImagePreview"]


class HoverPreview(pn.viewable.Viewer):
    """The image nearest the cursor on the map: thumbnail, file name and label (as text)."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, allow_None=True, doc="Where the thumbnail comes from.")

    def _jpeg(self, hover: Optional[int]):
        frame = self.store.frame
        if hover is None or self.thumbnails is None or frame is None or not 0 <= hover < len(frame):
            return None
        return self.thumbnails.get(shown_hashes(self.store, [hover], self.thumbnails)[0])

    def _caption(self, hover: Optional[int]) -> str:
        frame = self.store.frame
        if hover is None or frame is None or not 0 <= hover < len(frame):
            return "Point at the map to preview an image."
        path = str(self.store.values("path", [hover])[0])
        return f"{path.rsplit('/', 1)[-1]}\n{frame['label'].iloc[hover]}"

    def __panel__(self):
        hover = self.store.param.hover
        return pn.Row(
            pn.pane.JPG(pn.bind(self._jpeg, hover), width=96, height=96, fixed_aspect=True, margin=(0, 5)),
            text_pane(pn.bind(self._caption, hover), styles={"white-space": "pre-wrap", "font-size": "12px"},
                      sizing_mode="stretch_width"),
            height=100, sizing_mode="stretch_width",
        )


class ImagePreview(pn.viewable.Viewer):
    """The focused image, large, with its file name and label (as text, never HTML)."""

    store = param.ClassSelector(class_=ResultsStore, doc="The session's state.")
    thumbnails = param.ClassSelector(class_=ThumbnailCache, doc="Where the preview bytes come from.")

    def _image(self, focus: Optional[int], frame: pd.DataFrame):
        if focus is None or frame is None or not 0 <= focus < len(frame):
            return text_pane("Click a row of the table to see the image.", styles={"color": "#777"})
        shown = self.store.rows_frame([focus])
        row = shown.iloc[0]
        jpeg = (self.thumbnails.get(shown_hashes(self.store, [focus], self.thumbnails, frame=shown)[0], PREVIEW_SIZE)
                if self.thumbnails else None)
        caption = text_pane(f"{row['path']}\n{row['label']} · p={row['probability']:.2f}",
                            styles={"white-space": "pre-wrap", "font-size": "12px"})
        if jpeg is None:
            return pn.Column(caption, text_pane("(image not available)"))
        return pn.Column(pn.pane.JPG(jpeg, height=240, sizing_mode="stretch_width", fixed_aspect=True), caption)

    def __panel__(self):
        return pn.panel(pn.bind(self._image, self.store.param.focus, self.store.param.frame), min_height=260)
