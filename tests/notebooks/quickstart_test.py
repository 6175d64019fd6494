"""notebooks/quickstart.ipynb runs top to bottom and draws its plots."""

import os

import pytest

from tests.test_extras import require

nbformat = require("nbformat")
nbclient = require("nbclient")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quickstart_notebook_executes(tmp_path):
    from florence_keras.models import preset_registry

    if "florence_mini_builtin" not in preset_registry.trained_presets():
        pytest.fail("the trained built-in preset florence_mini_builtin is not shipped")
    notebook = nbformat.read(os.path.join(ROOT, "notebooks", "quickstart.ipynb"), as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = "".join(
        o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )
    assert "astronaut" in outputs and "diagonal mean" in outputs
    for name in ("quickstart_zero_shot.png", "quickstart_retrieval.png", "quickstart_similarity.png"):
        assert (tmp_path / name).stat().st_size > 1000
