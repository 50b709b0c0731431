"""The non-finite guard names where NaN/Inf starts, forward and backward, whichever way the
model is called, and holds on to nothing between iterations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import deepscope
from deepscope.store import open as open_store
from deepscope.tracking.guard import Guard


class NaNGradAt(nn.Module):
    """Identity forward; at call `at` its backward turns the gradient into NaN."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        poison = self.calls - 1 == self.at

        class _Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx: Any, t: torch.Tensor) -> torch.Tensor:
                return t.clone()

            @staticmethod
            def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
                return g * math.nan if poison else g

        out: torch.Tensor = _Fn.apply(x)
        return out


class InfAt(nn.Module):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * (math.inf if self.calls - 1 == self.at else 1.0)


def _events(logdir: Path, run: deepscope.Run, kind: str) -> list[tuple[str | None, int | None]]:
    events = open_store(logdir).run(run.name).events()
    return [(e.layer, e.step) for e in events if e.kind == kind]


def _model(middle: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(4, 8))
    model.add_module("mid", middle)
    model.add_module("fc2", nn.Linear(8, 1))
    return model


def test_a_nan_made_in_backward_names_the_first_parameter_it_reaches(tmp_path: Path) -> None:
    model = _model(NaNGradAt(at=4))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=3)
        for _ in range(7):
            model(torch.randn(16, 4)).pow(2).mean().backward()
            opt.step()
            opt.zero_grad()
    grads = _events(tmp_path, run, "nonfinite_gradient")
    assert len(grads) == 1
    layer, step = grads[0]
    assert step == 4 and layer is not None and layer.startswith("fc1.")
    # the optimizer then writes NaN into fc1's weights: its output goes bad one step later
    assert _events(tmp_path, run, "nonfinite_activation") == [("fc1", 5)]


def test_submodules_called_without_the_root_still_name_the_layer(tmp_path: Path) -> None:
    """Lightning calls submodules from training_step: the root's hooks never run."""
    inner = _model(InfAt(at=2))
    outer = nn.Module()
    outer.add_module("net", inner)
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(outer, every=100)
        for _ in range(4):
            out = inner(torch.ones(3, 4))
            out.sum().backward()
            inner.zero_grad()
    assert _events(tmp_path, run, "nonfinite_activation") == [("net.mid", 2)]


def test_raise_on_nonfinite_gradient_stops_before_the_next_forward(tmp_path: Path) -> None:
    model = _model(NaNGradAt(at=1))
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=100, raise_on_nonfinite=True)
        model(torch.ones(2, 4)).sum().backward()
        model(torch.ones(2, 4)).sum().backward()
        with pytest.raises(FloatingPointError, match=r"'fc1\..*iteration 1"):
            model(torch.ones(2, 4))


def test_forward_passes_without_backward_do_not_pile_up_references() -> None:
    guard = Guard([("w", nn.Parameter(torch.ones(3)))], defer=False)
    for _ in range(1000):
        guard.output("m", torch.ones(100), iteration=0, limit=10)
    assert len(guard._outs) <= 10
    guard.output("m", torch.tensor([math.nan]), iteration=0, limit=10)
    assert guard.forward_done(None, iteration=0)[0].names == ["m"]
    assert guard._outs == []


def test_a_finite_output_whose_sum_overflows_is_not_reported() -> None:
    guard = Guard([], defer=False)
    big = torch.full((4,), 3e38)
    guard.output("m", big, iteration=0, limit=10)
    assert guard.forward_done(big, iteration=0) == []


def test_an_internal_error_stops_the_watcher_not_the_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepscope.tracking.watch as watch_mod

    def broken(*args: Any, **kwargs: Any) -> torch.Tensor:
        raise RuntimeError("reducer bug")

    monkeypatch.setattr(watch_mod, "tensor_summary", broken)  # fault injection
    model = _model(nn.ReLU())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    w_before = model.fc1.weight.detach().clone()
    with deepscope.init(logdir=tmp_path) as run:
        with pytest.warns(RuntimeWarning, match="reducer bug"):
            run.watch(model, every=1)
            for _ in range(3):
                model(torch.randn(8, 4)).pow(2).mean().backward()
                opt.step()
                opt.zero_grad()
        run.log({"loss": 1.0}, step=3)
    assert not torch.equal(model.fc1.weight, w_before)  # training went on
    assert open_store(tmp_path).run(run.name).scalars("loss")[0].value == 1.0
    with deepscope.init(logdir=tmp_path) as run2:
        run2.watch(model, every=1, strict=True)
        with pytest.raises(RuntimeError, match="reducer bug"):
            model(torch.randn(8, 4))
