"""TorchScript and .pt2: listed without loading; loaded only with trust, in a worker."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from deepscope.sources import load_model, torchscript_file


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


@pytest.fixture
def spies(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(torch.jit, "load", lambda *a, **k: calls.append("jit.load"))
    monkeypatch.setattr(torch.export, "load", lambda *a, **k: calls.append("export.load"))
    real = torch.load

    def spy_load(*a: object, **k: object) -> object:
        calls.append(f"torch.load weights_only={k.get('weights_only')}")
        return real(*a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "load", spy_load)
    return calls


def test_torchscript_listing_without_loading(tmp_path: Path, spies: list[str]) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(_net()).save(str(path))
    assert torchscript_file.match(path)
    model = load_model(path)
    assert model.format == "torchscript"
    assert model.notes == [torchscript_file.CODE_NOTE]
    archive = model.graph.meta["archive"]
    assert any("code/__torch__/torch/nn/modules/linear" in name for name in archive["codeFiles"])
    assert archive["archiveVersion"] and any(n.endswith("data.pkl") for n in archive["pickles"])
    assert spies == []


def test_pt2_listing_without_loading(tmp_path: Path, spies: list[str]) -> None:
    path = tmp_path / "m.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.export.save(torch.export.export(_net(), (torch.randn(1, 3),)), str(path))
    model = load_model(path)
    assert model.format == "pt2" and model.graph.meta["structureOnly"]
    assert spies == []


@pytest.mark.slow
def test_trusted_torchscript_loads_in_a_worker(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    net = _net()
    torch.jit.script(net).save(str(path))
    model = torchscript_file.load(path, trust=True)
    ops = [n.op for n in model.graph.nodes]
    assert ops.count("linear") == 2 and "relu" in ops
    assert sum(
        w.shape[0] * (w.shape[1] if len(w.shape) > 1 else 1) for w in model.weights.values()
    ) == sum(p.numel() for p in net.parameters())
