"""bulk_panel: explore, cluster and label large image collections by visual similarity.

>>> import bulk_panel
>>> results = bulk_panel.load_results("results.parquet")
>>> results.frame.head()

Names are imported on first use, so ``import bulk_panel`` stays light.
"""
from importlib import import_module
from pathlib import Path

__version__ = "0.1.0"

#: the bundled demo images (package data: they ship in the wheel)
DEMO_FOLDER = Path(__file__).resolve().parent / "demo"

_EXPORTS = {
    "Pipeline": "bulk_panel.compute.pipeline",
    "Results": "bulk_panel.compute.results",
    "ResultsError": "bulk_panel.compute.results",
    "load_results": "bulk_panel.compute.results",
    "explore": "bulk_panel.server.jupyter",
}
__all__ = [*_EXPORTS, "DEMO_FOLDER", "__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bulk_panel' has no attribute {name!r}")
