"""The results of a run: one Parquet file (or a folder of parts), read back with :func:`load_results`.

- :mod:`.format`: the file's layout and header checks, :class:`ResultsError`;
- :mod:`.parts`: a folder of Parquet parts and the columns a lazy folder keeps on disk;
- :mod:`.frame`: :class:`Results` (taking rows, writing) and :func:`build_frame`;
- :mod:`.load`: :func:`load_results`.

>>> results = load_results("results.parquet")
>>> results.frame.head()        # path, x, y, cluster, label, probability, outlier_score, ...
>>> results.embeddings.shape    # float32, aligned with the rows (read on first access)
>>> results.skipped             # files that could not be used, with the reason
>>> results.meta["model"]
>>> lazy = load_results("results/", lazy=True)  # a folder of parts: path, content_hash stay on disk
>>> lazy.column("path", [5, 2])                 # read from the parts for those rows only
"""
from .format import ResultsError
from .frame import Results, build_frame
from .load import load_results
from .parts import is_results_folder

__all__ = ["Results", "ResultsError", "build_frame", "is_results_folder", "load_results"]
