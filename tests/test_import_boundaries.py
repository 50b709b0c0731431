"""graph/, store/ and server/ import without torch (DESIGN §1): the dashboard reads a store
on a machine that has no torch. Each import runs in a fresh interpreter with torch blocked."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

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
