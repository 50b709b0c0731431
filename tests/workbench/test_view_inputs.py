"""``deepscope view MODEL --inputs PATH``: the workbench from the shell. Inputs from an image
folder (class subfolders label them), .npy/.npz or module:function; the model from a factory
with optional --weights (safe loaders); a model file with --inputs is refused (files never run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from deepscope.commands.view import view
from deepscope.workbench.inputs import load_inputs, load_weights

MODELS = textwrap.dedent(
    """
    import torch
    from torch import nn

    def build():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

    def batch():
        return torch.rand(3, 3, 8, 8), [1, 0, 1]
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "wbmodels.py").write_text(MODELS)
    rng = np.random.default_rng(0)
    for cls, n in (("cat", 2), ("dog", 3)):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    return tmp_path


def test_inputs_from_a_folder_npz_npy_and_a_function(project: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    batch = load_inputs(str(project / "imgs"))
    assert tuple(batch.inputs.shape) == (5, 3, 8, 8) and batch.inputs.dtype == torch.float32
    assert batch.classes == ["cat", "dog"] and batch.labels == [0, 0, 1, 1, 1]
    first = np.asarray(Image.open(project / "imgs" / "cat" / "0.png"), np.float32) / 255
    np.testing.assert_allclose(batch.inputs[0].numpy(), first.transpose(2, 0, 1))
    np.savez(project / "d.npz", x=np.ones((4, 2), np.float32), y=np.arange(4))
    z = load_inputs(str(project / "d.npz"))
    assert tuple(z.inputs.shape) == (4, 2) and z.labels == [0, 1, 2, 3]
    np.save(project / "d.npy", np.zeros((2, 3)))
    assert load_inputs(str(project / "d.npy")).inputs.dtype == torch.float32
    monkeypatch.chdir(project)
    f = load_inputs("wbmodels:batch")
    assert tuple(f.inputs.shape) == (3, 3, 8, 8) and f.labels == [1, 0, 1]


def test_weights_load_into_the_factory_model_through_the_safe_loaders(project: Path) -> None:
    from safetensors.torch import save_file

    sys.path.insert(0, str(project))
    try:
        import wbmodels  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(project))
    trained = wbmodels.build()
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)
    save_file(trained.state_dict(), str(project / "w.safetensors"))
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, project / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        fresh = wbmodels.build()
        load_weights(fresh, project / name)
        for a, b in zip(fresh.parameters(), trained.parameters(), strict=True):
            assert torch.equal(a, b)


def test_a_model_file_with_inputs_is_refused_with_advice(project: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"fc.weight": np.zeros((2, 3), np.float32)}, str(project / "m.safetensors"))
    result = CliRunner().invoke(view, [str(project / "m.safetensors"), "--inputs",
                                       str(project / "imgs")])  # fmt: skip
    assert result.exit_code == 1
    assert "package.module:factory" in result.output and "--weights" in result.output


def test_view_with_inputs_serves_the_live_workbench(project: Path) -> None:
    code = "from deepscope.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "view", "wbmodels:build", "--inputs", "imgs", "--port", "0"],
        cwd=project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 120
        line = ""
        while "http://" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        url = line.split("at ", 1)[1].split()[0].rstrip("/")
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/api/workbench", timeout=30) as r:
            info = json.loads(r.read())
        assert info["classNames"] == ["cat", "dog"] and len(info["inputs"]) == 5
        assert info["inputs"][4]["labelName"] == "dog"
        with urllib.request.urlopen(url + "/api/workbench/view?view=activations&node=ns:0&input=3",
                                    timeout=60) as r:  # fmt: skip
            assert json.loads(r.read())["meta"]["shape"] == [4, 8, 8]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
