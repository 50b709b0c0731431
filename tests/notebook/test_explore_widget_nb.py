"""A real notebook (nbclient, ipykernel): `deepscope.explore(model, x)` as a cell's last line
displays the explore widget (the anywidget view, its model carrying the widget bundle with
``explore`` set) with a text/html fallback that links the workbench's URL."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

WIDGET = "application/vnd.jupyter.widget-view+json"

SETUP = """
import torch, deepscope
torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))
x = torch.rand(2, 1, 8, 8)
"""


@pytest.fixture
def kernel_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A kernelspec "python3" that runs this interpreter (the project's venv)."""
    pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("anywidget")
    from deepscope.views import embed

    if not (embed.APP_DIR / "embed" / "widget.js").exists():
        pytest.skip("the frontend is not built: run `npm run build` in frontend/")
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "py", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    return "python3"


def _outputs(cell: Any) -> list[dict[str, Any]]:
    return [o for o in cell["outputs"] if o["output_type"] in ("display_data", "execute_result")]


def test_explore_as_a_cells_last_line_shows_the_widget_with_a_link(kernel_env: str) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell("deepscope.explore(model, x)"),
        nbformat.v4.new_code_cell("ex = _\nprint(ex.url)\nex.close()"),
    ]
    client = NotebookClient(nb, kernel_name=kernel_env, timeout=300, store_widget_state=True)
    client.execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    (out,) = _outputs(nb.cells[1])
    url = nb.cells[2]["outputs"][0]["text"].strip()
    assert url.startswith("http://127.0.0.1:")
    data = out["data"]
    model = state[data[WIDGET]["model_id"]]["state"]
    assert model["explore"] is True
    assert "deepscope-comm" in model["_esm"]  # the bundle with the comm transport
    assert f'href="{url}"' in data["text/html"]
    assert url in data["text/plain"]
