"""Every public name of `deepscope` keeps working whatever was imported or called before it.

`deepscope.graph` is both the Graph IR subpackage and the `graph(model, x)` verb: a package
attribute that a submodule import replaces would turn the verb into a plain module. Each
check runs in a fresh interpreter, so the order of imports is the one the test chooses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHECKS = """
import importlib, torch, deepscope
from deepscope.graph.ir import Graph

def check_all(logdir):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(2 * 4 * 4, 3))
    x = torch.randn(2, 1, 6, 6)
    g = deepscope.graph(net, x)
    assert isinstance(g, Graph) and g.groups[""].params == 119, g
    assert deepscope.graph.Graph is Graph and callable(deepscope.graph)
    ser = importlib.import_module("deepscope.graph.serialize")
    assert deepscope.graph.serialize is ser and ser.from_json(ser.to_json(g)).nodes
    s = deepscope.summary(net, x)
    assert s.total_params == 119 and "Total params: 119" in str(s)
    m = deepscope.load_model(net, example_inputs=x)
    assert m.graph.groups[""].params == 119 and "0.weight" in m.weights
    assert deepscope.graph(m) is m.graph and deepscope.graph(g) is g
    with deepscope.init(logdir=logdir) as run:
        assert isinstance(run, deepscope.Run)
        run.log_graph(net, x)
    r = deepscope.attribute(net, x, target=1, method="saliency")
    assert r.normalized.shape == (2, 6, 6)
    from deepscope.analysis.attribution.saliency import Saliency
    r = deepscope.attribute(net, x, target=1, method=deepscope.smooth(Saliency(net), n=2))
    assert r.method == "smooth_saliency" and r.normalized.shape == (2, 6, 6)
    for err in ("DeepscopeError", "ModelFormatError", "UnsafeModelError"):
        assert issubclass(getattr(deepscope, err), Exception)
    assert issubclass(deepscope.UnsafeModelError, deepscope.ModelFormatError)
    assert issubclass(deepscope.ModelFormatError, deepscope.DeepscopeError)
    assert isinstance(deepscope.__version__, str)
    assert set(deepscope.__all__) <= set(dir(deepscope))
    for name in deepscope.__all__:
        getattr(deepscope, name)
"""


def _run(body: str, tmp_path: Path) -> None:
    code = CHECKS + textwrap.dedent(body)
    env = {**os.environ, "KERAS_BACKEND": "torch", "LOGDIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]


def test_every_public_name_works_after_importing_every_module(tmp_path: Path) -> None:
    _run(
        """
        import importlib, os, pkgutil
        skipped = []
        for info in pkgutil.walk_packages(deepscope.__path__, "deepscope."):
            if info.name.startswith("deepscope.tracking.callbacks."):
                continue  # leaves that import keras/lightning/transformers (seconds each)
            try:
                importlib.import_module(info.name)
            except ImportError as exc:  # an optional dependency (the error names the extra)
                skipped.append((info.name, str(exc)))
        assert len(skipped) < 5, skipped
        check_all(os.environ["LOGDIR"])
        check_all(os.environ["LOGDIR"])  # and again, after every verb has run once
        """,
        tmp_path,
    )


@pytest.mark.parametrize(
    "first",
    [
        "deepscope.summary(torch.nn.Linear(3, 2), torch.zeros(1, 3))",
        "deepscope.load_model(torch.nn.Linear(3, 2))",
        "deepscope.init(logdir=os.environ['LOGDIR']).log_graph(torch.nn.Linear(3, 2), torch.zeros(1, 3))",
        "import deepscope.graph.serialize",
        "import deepscope.sources",
    ],
)
def test_graph_is_callable_after_each_verb(first: str, tmp_path: Path) -> None:
    _run(
        f"""
        import os
        {first}
        g = deepscope.graph(torch.nn.Linear(3, 2), torch.zeros(1, 3))
        assert g.groups[""].params == 8
        check_all(os.environ["LOGDIR"])
        """,
        tmp_path,
    )


def test_import_deepscope_imports_no_torch_and_no_heavy_module() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any 'import torch' now fails
        import deepscope
        assert callable(deepscope.graph) and deepscope.graph.Graph.__name__ == "Graph"
        heavy = {"numpy", "starlette", "uvicorn", "PIL", "click", "deepscope.sources",
                 "deepscope.tracking", "deepscope.server"} & set(sys.modules)
        assert not heavy, heavy
        try:
            deepscope.graph(object())
        except Exception as exc:
            assert type(exc).__name__ == "ModelFormatError", repr(exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
