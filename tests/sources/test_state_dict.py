"""State dicts: weights_only loading, nested checkpoints, clear errors for anything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.errors import ModelFormatError, UnsafeModelError
from deepscope.sources import _limits
from deepscope.sources import state_dict as sd


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )


def test_state_dict_round_trips(tmp_path: Path) -> None:
    net = _net()
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    assert sd.match(path)
    model = sd.load(path)
    live = net.state_dict()
    assert set(model.weights) == set(live)
    n_params = sum(p.numel() for p in net.parameters())
    n_buffers = sum(b.numel() for b in net.buffers())
    assert sum(r.numel for n in model.graph.nodes for r in n.params) == n_params + n_buffers
    for name, t in live.items():
        np.testing.assert_array_equal(model.weights[name].values, t.numpy())
    assert model.graph.node("3.weight").namespace == "3"
    st = model.graph.node("3.weight").attrs["stats"]
    assert st["mean"] == pytest.approx(float(live["3.weight"].double().mean()), rel=1e-9)


def test_training_checkpoint_uses_the_model_entry(tmp_path: Path) -> None:
    net = _net()
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.pth"
    torch.save({"epoch": 3, "state_dict": net.state_dict(), "optimizer": opt.state_dict()}, path)
    model = sd.load(path)
    assert set(model.weights) == set(net.state_dict())
    assert any("optimizer" in note for note in model.notes)


def test_plain_nested_containers_are_flattened(tmp_path: Path) -> None:
    path = tmp_path / "nested.bin"
    torch.save({"enc": {"w": torch.ones(2, 2)}, "list": [torch.zeros(3), torch.arange(4)]}, path)
    model = sd.load(path)
    assert set(model.weights) == {"enc.w", "list.0", "list.1"}
    assert model.weights["list.1"].dtype == "int64"


def test_bfloat16_weights_get_values_and_stats(tmp_path: Path) -> None:
    path = tmp_path / "bf.pt"
    torch.save({"w": torch.tensor([1.0, float("nan"), 3.0]).bfloat16()}, path)
    model = sd.load(path)
    assert model.weights["w"].dtype == "bfloat16"
    assert model.graph.node("w").attrs["stats"]["n_nan"] == 1
    assert model.weights["w"].values[2] == 3.0


class Custom:
    """A class that weights_only refuses (it is not an allowed global)."""

    def __init__(self) -> None:
        self.x = 1


def test_custom_global_is_refused_with_its_name(tmp_path: Path) -> None:
    path = tmp_path / "custom.pt"
    torch.save({"w": torch.zeros(1), "obj": Custom()}, path)
    with pytest.raises(UnsafeModelError) as e:
        sd.load(path)
    assert "Custom" in str(e.value)
    assert "trust=True" in str(e.value) and "add_safe_globals" in str(e.value)


def test_trust_loads_in_a_sandbox_worker(tmp_path: Path) -> None:
    path = tmp_path / "custom.pt"
    # A class from a module the worker can import, so trusted unpickling succeeds.
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "opt": torch.optim.SGD}, path)
    model = sd.load(path, trust=True)
    assert model.weights["w"].shape == (2, 3)
    assert model.graph.node("w").attrs["stats"]["max"] == 5.0
    assert "sandbox" in model.notes[0]


def test_torchscript_archive_is_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "scripted.pt"
    torch.jit.script(nn.Linear(2, 2)).save(str(path))
    assert not sd.match(path)
    with pytest.raises(UnsafeModelError, match="TorchScript"):
        sd.load(path)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"PK\x03\x04garbage"])
def test_garbage_gives_a_format_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError):
        sd.load(path)


def test_truncated_checkpoint_gives_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "t.pt"
    torch.save(_net().state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError):
        sd.load(path)


def test_old_torch_is_refused_before_loading() -> None:
    with pytest.raises(UnsafeModelError, match="2.10"):
        _limits.check_torch_version("2.9.1+cu121")
    _limits.check_torch_version("2.10.0")
    assert _limits.version_tuple("2.13.0+cpu") == (2, 13, 0)
    assert _limits.version_tuple("1.21.0rc1") == (1, 21, 0)
