"""The example notebook runs in a real kernel (nbclient) and renders the dashboard."""
from pathlib import Path

import pytest

from helpers import real_results

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "explore.ipynb"


@pytest.mark.slow  # a real Jupyter kernel
def test_example_notebook_renders_the_dashboard(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")

    path = real_results(tmp_path / "images").save(tmp_path / "results.parquet")
    monkeypatch.setenv("BULK_PANEL_RESULTS", str(path))
    monkeypatch.setenv("BULK_PANEL_CACHE", str(tmp_path / "cache"))
    nb = nbformat.read(EXAMPLE, as_version=4)
    # the kernel is this interpreter (the venv's ipykernel), whatever kernelspecs are installed
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(EXAMPLE.parent)}})
    client.execute()
    bundles = [out.get("data", {}) for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", [])]
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, errors
    dashboard = [b for b in bundles if "application/vnd.holoviews_exec.v0+json" in b]
    assert dashboard, [list(b) for b in bundles]
    assert "text/html" in dashboard[0]
    assert any("application/vnd.holoviews_load.v0+json" in b for b in bundles)  # Bokeh/Panel resources
