"""`deepscope view MODEL`: a model file in the graph panel (no log directory), clean errors."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from click.testing import CliRunner
from safetensors.numpy import save_file
from server_support import strict_loads

from deepscope.commands.serve import is_loopback, view
from deepscope.sources.factory import parse_shape


def test_view_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(view, [str(tmp_path / "nope.onnx")])
    assert result.exit_code == 1
    assert "model file not found" in result.output and "Traceback" not in result.output


def test_shape_and_loopback_helpers() -> None:
    assert parse_shape("1,3,32,32") == (1, 3, 32, 32) == parse_shape("1x3x32x32")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


def test_view_serves_a_model_file_in_model_mode(tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    save_file({"fc.weight": np.zeros((2, 3), np.float32)}, str(path))
    code = "from deepscope.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "view", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "http://" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        url = line.split("at ", 1)[1].split()[0].rstrip("/")
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/api/health").json()["mode"] == "model"
        graph = strict_loads(httpx.get(url + "/api/graph?model=1").text)
        assert [n["id"] for n in graph["nodes"]] == ["fc.weight"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
