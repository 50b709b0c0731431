"""A real notebook run by nbclient on a real ipykernel: `attribute(...).show()`,
`deepscope.show(deepscope.graph(...))` and `run.show()` put the anywidget model (with the
snapshot it draws, and the widget bundle as its ES module) and static fallbacks in the
outputs."""

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
    torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(4, 8, 3, padding=1), torch.nn.ReLU(),
    torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3))
x = torch.rand(2, 1, 12, 12)
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


def test_results_and_runs_show_as_widgets_with_fallbacks(kernel_env: str, tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    logdir = tmp_path / "runs"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell(
            'deepscope.attribute(model, x, target=1, method="saliency").show()'
        ),
        nbformat.v4.new_code_cell("deepscope.show(deepscope.graph(model, x))"),
        nbformat.v4.new_code_cell(
            f"run = deepscope.init(logdir={str(logdir)!r}, name='nb-run')\n"
            "for s in range(5): run.log({'loss': 1.0 / (s + 1)}, step=s)\n"
            "run.show()"
        ),
        # a result left as the cell's last line displays as its widget too
        nbformat.v4.new_code_cell("deepscope.activations(model, x)"),
    ]
    client = NotebookClient(nb, kernel_name=kernel_env, timeout=300, store_widget_state=True)
    client.execute()
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]

    def model_of(out: dict[str, Any]) -> dict[str, Any]:
        return state[out["data"][WIDGET]["model_id"]]["state"]

    (attr,) = _outputs(nb.cells[1])
    assert {WIDGET, "image/png", "text/html"} <= set(attr["data"])
    m = model_of(attr)
    assert m["payload"]["format"] == "deepscope-snapshot" and m["payload"]["panel"] == "attribution"
    assert "render" in m["_esm"] and "deepscope" in m["_esm"]  # the widget bundle itself
    (graph,) = _outputs(nb.cells[2])
    assert WIDGET in graph["data"] and model_of(graph)["payload"]["panel"] == "graph"
    (acts,) = _outputs(nb.cells[4])
    assert {WIDGET, "image/png", "text/html"} <= set(acts["data"])
    assert model_of(acts)["payload"]["panel"] == "activations"
    (dash,) = _outputs(nb.cells[3])
    assert WIDGET in dash["data"] and '<iframe sandbox="allow-scripts"' in dash["data"]["text/html"]
    page = model_of(dash)["html"]
    assert page.startswith("<!doctype html>") and "nb-run" in page and "deepscope-data" in page
