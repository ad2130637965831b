"""The state layer: what one browser session holds, with no Panel import.

- :class:`ResultsStore` (:mod:`.store`): the results frame, the selection and the labels; the
  views read it and write the user's intent back into it. Built from one module per concern
  (:mod:`.rows`, :mod:`.selection`, :mod:`.labels`, :mod:`.tools`, :mod:`.exports`) on plain
  helpers (:mod:`.geometry`, :mod:`.colours`).
- :class:`PipelineRunner` (:mod:`.runner`): runs the session's pipeline off the event loop.

>>> store = ResultsStore.from_path("results.parquet")
>>> runner = PipelineRunner(folder="photos", on_results=store.load)
"""
from .colours import NOISE_COLOR, assign_colours, label_palette
from .geometry import NearestPoint, points_in_box, points_in_polygon
from .runner import FolderRefused, PipelineRunner, one_line, resolve_folder
from .store import ResultsStore

__all__ = [
    "FolderRefused", "NOISE_COLOR", "NearestPoint", "PipelineRunner", "ResultsStore", "assign_colours",
    "label_palette", "one_line", "points_in_box", "points_in_polygon", "resolve_folder",
]
