"""graph/, store/, views/ and server/ import without torch (DESIGN §1): the dashboard reads a store
on a machine that has no torch. Each import runs in a fresh interpreter with torch blocked."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest

MODULES = [
    "deepscope.graph",
    "deepscope.graph.ir",
    "deepscope.store",
    "deepscope.store.protocol",
    "deepscope.store.jsonenc",
    "deepscope.store.reader",
    "deepscope.store.writer",
    "deepscope.store.downsample",
    "deepscope.store.schema",
    "deepscope.store.rows",
    "deepscope.store.device",
    "deepscope.store.spill",
    "deepscope.store.process",
    "deepscope.store.blobs",
    "deepscope.views",
    "deepscope.views.schema",
    "deepscope.views.envelope",
    "deepscope.views.registry",
    "deepscope.views.wire",
    "deepscope.views.tsgen",
    "deepscope.views.kinds.attribution",
]
for optional in ["deepscope.graph.serialize", "deepscope.server", "deepscope.server.app"]:
    try:
        if importlib.util.find_spec(optional) is not None:
            MODULES.append(optional)
    except ModuleNotFoundError:
        pass


def _run_blocked(code: str) -> subprocess.CompletedProcess[str]:
    prelude = "import sys\nsys.modules['torch'] = None  # any 'import torch' now fails\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_with_torch_blocked(module: str) -> None:
    out = _run_blocked(f"import {module}\nassert sys.modules['torch'] is None\n")
    assert out.returncode == 0, out.stderr


def test_a_store_written_and_read_without_torch(tmp_path: Path) -> None:
    out = _run_blocked(
        f"""
        import deepscope, deepscope.store
        with deepscope.init(logdir={str(tmp_path)!r}, name="r") as run:
            run.log({{"loss": 0.5}})
            run.log_histogram("w", [1.0, 2.0, float("nan")])
        r = deepscope.store.open({str(tmp_path)!r}).run("r")
        assert r.scalars("loss")[0].value == 0.5 and r.histograms("w")[0].n_nan == 1
        assert sys.modules["torch"] is None
        """
    )
    assert out.returncode == 0, out.stderr


# ---- PyTorch is optional (`deepscope[torch]`): viewing works without it, and every entry
# that needs it says what to install.

HINT = "pip install 'deepscope[torch]'"
CLI = "import sys\nsys.modules['torch'] = None\nfrom deepscope.cli import main\nmain()\n"


def _onnx_model(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "fc.weight")
    b = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "fc.bias")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "fc.weight"], ["h"], name="fc/MatMul"),
            helper.make_node("Add", ["h", "fc.bias"], ["y"], name="fc/Add"),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def _serve_and_get(args: list[str], route: str) -> dict[str, Any]:
    """Start `deepscope ARGS --port 0` with torch blocked, GET `route` from the URL it prints."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""  # the URL, or EOF on failure
        match = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert match, line + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        with urllib.request.urlopen(match.group(1) + route, timeout=30) as resp:
            assert resp.status == 200
            data: dict[str, Any] = json.loads(resp.read())
        assert proc.poll() is None, "the server is still up"
        return data
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_runs_without_torch(tmp_path: Path) -> None:
    made = _run_blocked(
        f"""
        import deepscope
        with deepscope.init(logdir={str(tmp_path)!r}, name="r1") as run:
            run.log({{"loss": 0.5}})
        """
    )
    assert made.returncode == 0, made.stderr
    data = _serve_and_get(["serve", str(tmp_path)], "/api/runs")
    assert "r1" in json.dumps(data)


def test_view_and_summary_of_an_onnx_file_run_without_torch(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path / "tiny.onnx")
    out = _cli("summary", str(path))
    assert out.returncode == 0, out.stderr
    assert "Total params: 15" in out.stdout
    graph = _serve_and_get(["view", str(path)], "/api/graph?model=1")
    assert {"fc/MatMul", "fc/Add"} <= {n["label"] for n in graph["nodes"]} | {
        n["id"] for n in graph["nodes"]
    }


def test_every_torch_entry_says_what_to_install(tmp_path: Path) -> None:
    out = _run_blocked(
        f"""
        import deepscope
        from deepscope.errors import DeepscopeError
        HINT = {HINT!r}

        def hint_of(call):
            try:
                call()
            except DeepscopeError as exc:
                assert HINT in str(exc), repr(exc)
                return
            raise AssertionError("no error")

        run = deepscope.init(logdir={str(tmp_path)!r}, name="w")
        hint_of(lambda: run.watch(object()))
        run.finish()
        hint_of(lambda: deepscope.attribute)
        hint_of(lambda: deepscope.smooth)
        hint_of(lambda: deepscope.graph(object(), None))
        hint_of(lambda: deepscope.summary(object(), None))
        hint_of(lambda: deepscope.load_model(object()))
        from deepscope.sources import torch_module
        hint_of(lambda: torch_module.graph(object(), None))
        hint_of(lambda: torch_module.load(object()))
        assert sys.modules["torch"] is None
        """
    )
    assert out.returncode == 0, out.stderr
    (tmp_path / "tinymodel.py").write_text(
        "import torch\n\ndef make():\n    return torch.nn.Linear(2, 2)\n"
    )
    for args in (
        ["demo", "--no-serve", "--logdir", str(tmp_path / "d")],
        ["summary", "tinymodel:make", "--input-shape", "1,2"],
        ["view", "tinymodel:make", "--input-shape", "1,2", "--port", "0"],
    ):
        cli = _cli(*args, cwd=tmp_path)
        assert cli.returncode != 0 and HINT in cli.stderr, cli.stderr
        assert "Traceback" not in cli.stderr, cli.stderr
