"""Every notebook in notebooks/ runs top to bottom without error (CI executes them all).

Each executed notebook is also stored in the docs build's jupyter-cache (docs/_build/
.jupyter_cache, read with ``nb_execution_mode = "cache"`` in docs/conf.py), so the site is
built from these runs instead of executing every notebook a second time.
``EDGEOPT_NOTEBOOK_CACHE`` names another cache directory, or ``off`` to store nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CACHE_VARIABLE = "EDGEOPT_NOTEBOOK_CACHE"
DOCS_CACHE = ROOT / "docs" / "_build" / ".jupyter_cache"


def store_for_the_docs(notebook, path: Path) -> None:
    """Put an executed notebook into the docs build's jupyter-cache (see the module docstring)."""
    directory = os.environ.get(CACHE_VARIABLE) or str(DOCS_CACHE)
    if directory == "off" or not (ROOT / "docs" / "conf.py").exists():
        return
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    # The cache matches notebooks by their code and cell metadata: drop the execution
    # timestamps nbclient adds, so the docs build finds the source notebook's record.
    source = nbformat.read(path, as_version=4)
    for executed, original in zip(notebook.cells, source.cells, strict=True):
        executed.metadata = original.metadata
    get_cache(directory).cache_notebook_bundle(
        CacheBundleIn(notebook, str(path)), check_validity=False, overwrite=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors
    store_for_the_docs(notebook, path)


def test_there_is_a_notebook_per_model_and_topic():
    expected = {"edgesplit", "two_stage", "tinyfel", "analysis", "verification", "profiles"}
    assert {f"{name}.ipynb" for name in expected} <= {p.name for p in NOTEBOOKS}
