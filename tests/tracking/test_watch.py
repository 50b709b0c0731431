"""run.watch(): what it logs equals a hand computation, its rules fire on models built to
fail, stay quiet on a healthy one, and its hooks never outlive it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deepscope
from deepscope.store import open as open_store


def _events(logdir: Path, run: deepscope.Run) -> list:  # type: ignore[type-arg]
    return open_store(logdir).run(run.name).events()


def _hook_count(model: nn.Module) -> int:
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
    for p in model.parameters():
        n += len(getattr(p, "_post_accumulate_grad_hooks", None) or {})
    return n


class NaNAt(nn.Module):
    """Identity, except that at call `at` it divides by zero."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.calls = at, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x * (math.nan if self.calls - 1 == self.at else 1.0)


def test_nan_event_names_the_layer_and_the_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(4, 8))
    model.add_module("act", nn.ReLU())
    model.add_module("bad", NaNAt(at=7))
    model.add_module("fc2", nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=5)
        for _ in range(10):
            loss = model(torch.randn(16, 4)).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
    nonfinite = [e for e in _events(tmp_path, run) if e.kind == "nonfinite_activation"]
    assert [(e.layer, e.step, e.severity) for e in nonfinite] == [("bad", 7, "error")]
    grads = [e for e in _events(tmp_path, run) if e.kind == "nonfinite_gradient"]
    assert grads and grads[0].step == 7


def test_raise_on_nonfinite_stops_at_the_first_nan(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(2, 2), NaNAt(at=2))
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=100, raise_on_nonfinite=True)
        model(torch.ones(1, 2)).sum().backward()
        model(torch.ones(1, 2)).sum().backward()
        with pytest.raises(FloatingPointError, match="'1'.*iteration 2"):
            model(torch.ones(1, 2))


def test_deep_sigmoid_mlp_gets_a_vanishing_gradient_event_on_early_layers(tmp_path: Path) -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(10):
        layers += [nn.Linear(32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=1)
        for _ in range(4):
            F.mse_loss(model(torch.randn(64, 32)), torch.randn(64, 1)).backward()
            opt.step()
            opt.zero_grad()
    vanishing = [e for e in _events(tmp_path, run) if e.kind == "vanishing_gradients"]
    assert len(vanishing) == 1
    assert vanishing[0].layer == "0.weight"


def test_relu_net_with_bias_minus_10_gets_a_dead_units_event(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(8, 16))
    model.add_module("relu", nn.ReLU())
    model.add_module("fc2", nn.Linear(16, 2))
    with torch.no_grad():
        model.fc1.bias.fill_(-10.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=1)
        for _ in range(3):
            F.cross_entropy(model(torch.randn(32, 8)), torch.randint(0, 2, (32,))).backward()
            opt.step()
            opt.zero_grad()
    dead = [e for e in _events(tmp_path, run) if e.kind == "dead_units"]
    assert [(e.layer, e.severity) for e in dead] == [("relu", "warning")]
    assert "100%" in dead[0].message


def test_histograms_equal_numpy_and_update_ratio_equals_hand_computation(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(20, 30), nn.Tanh(), nn.Linear(30, 3))
    w0 = model[0].weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=1)
        F.cross_entropy(model(x), y).backward()
        g0 = model[0].weight.grad.detach().clone()  # type: ignore[union-attr]
        opt.step()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
    reader = open_store(tmp_path).run(run.name)
    h = reader.histograms("weights/0.weight")[0]
    w = w0.double().numpy().ravel()
    counts, edges = np.histogram(w, bins=64, range=(w.min(), w.max()))
    assert h.step == 0
    assert list(h.counts) == counts.tolist()
    np.testing.assert_allclose(h.edges, edges, rtol=1e-6)
    gh = reader.histograms("grads/0.weight")[0]
    gcounts, _ = np.histogram(
        g0.double().numpy(), bins=64, range=(g0.min().item(), g0.max().item())
    )
    assert list(gh.counts) == gcounts.tolist()
    ratio = reader.scalars("update_ratio/0.weight")[0]
    expected = (0.5 * g0).norm().item() / w0.norm().item()
    assert ratio.step == 0
    assert ratio.value == pytest.approx(expected, rel=1e-5)
    gnorm = reader.scalars("grad_norm/0.weight")[0].value
    assert gnorm == pytest.approx(g0.norm().item(), rel=1e-5)


def test_hooks_are_gone_after_unwatch_finish_and_an_exception(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 1))
    before = _hook_count(model)
    run = deepscope.init(logdir=tmp_path)
    run.watch(model, every=1)
    assert _hook_count(model) > before
    run.unwatch(model)
    assert _hook_count(model) == before
    run.watch(model, every=1)
    run.finish()
    assert _hook_count(model) == before

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with deepscope.init(logdir=tmp_path) as run2:
            run2.watch(model, every=1)
            model(torch.ones(2, 3)).sum().backward()
            raise Boom()
    assert _hook_count(model) == before


def _digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    x, y = x[perm], y[perm]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def test_healthy_cnn_on_digits_raises_no_warning(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip
    xtr, ytr, xte, yte = _digits()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    step = 0
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=10)
        for _epoch in range(3):
            for i in range(0, len(ytr), 32):
                loss = F.cross_entropy(model(xtr[i : i + 32]), ytr[i : i + 32])
                loss.backward()
                opt.step()
                opt.zero_grad()
                run.log({"train/loss": loss}, step=step)
                step += 1
    with torch.no_grad():
        acc = (model(xte).argmax(1) == yte).float().mean().item()
    assert acc > 0.9
    events = _events(tmp_path, run)
    assert [(e.kind, e.layer, e.message) for e in events if e.severity != "info"] == []
    assert open_store(tmp_path).run(run.name).histograms("grads/0.weight")


def test_weights_of_unwatched_modules_are_read_before_the_optimizer_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 2))
    w2 = model[2].weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=1, layers=["0"])  # module "2" has no hook of its own
        model(torch.randn(8, 6)).sum().backward()
        opt.step()
        opt.zero_grad()
        model(torch.randn(8, 6)).sum().backward()
    h = open_store(tmp_path).run(run.name).histograms("weights/2.weight")[0]
    w = w2.double().numpy().ravel()
    counts, _ = np.histogram(w, bins=64, range=(w.min(), w.max()))
    assert h.step == 0 and list(h.counts) == counts.tolist()
    assert (h.min, h.max) == (w.min(), w.max())


def test_overlays_name_the_owning_group_also_for_a_parameter_of_the_model_itself(
    tmp_path: Path,
) -> None:
    """Overlay keys are graph namespaces: ``body/0`` for ``body.0.weight`` and the root group
    ``""`` for a parameter the model itself holds, never the parameter's own name."""

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
            self.mix = nn.Parameter(torch.eye(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x) @ self.mix

    model = Net()
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=1)
        model(torch.randn(4, 3)).sum().backward()
        model(torch.randn(4, 3)).sum().backward()
    r = open_store(tmp_path).run(run.name)
    overlay = deepscope.store.jsonenc.loads(r.read_blob(r.blobs("overlay")[0]))
    assert set(overlay["grad_norm"]) == {"body/0", ""}, overlay["grad_norm"]
    assert set(overlay["act_std"]) >= {"body/0", "body/1"}, overlay["act_std"]


def test_watch_and_attribution_take_the_same_tensor_from_a_module_output(tmp_path: Path) -> None:
    """One rule for a module's output tensor: the first tensor of a tuple, list or any
    mapping (a `ModelOutput`-like object), as `first_tensor` gives it to attribution."""
    from collections.abc import Iterator, Mapping

    from deepscope.capture.hooks import find_tensor, first_tensor

    class Out(Mapping[str, object]):
        def __init__(self, **items: object) -> None:
            self._items = items

        def __getitem__(self, key: str) -> object:
            return self._items[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._items)

        def __len__(self) -> int:
            return len(self._items)

    class Block(nn.Module):  # a leaf: watch hooks leaf modules
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.eye(3))

        def forward(self, x: torch.Tensor) -> Out:
            return Out(note="hidden", hidden=(x @ self.w) * 0 + 2.0)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = Block()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = self.block(x)["hidden"]
            assert isinstance(out, torch.Tensor)
            return out

    x = torch.randn(4, 3)
    out = Net().block(x)
    assert first_tensor(out) is out["hidden"] and find_tensor(out) is out["hidden"]
    assert find_tensor(("no", None)) is None
    with pytest.raises(TypeError, match="no tensor"):
        first_tensor(("no", None))

    model = Net()
    with deepscope.init(logdir=tmp_path) as run:
        run.watch(model, every=1, what=("activations",))
        model(x).sum().backward()
    mean = open_store(tmp_path).run(run.name).scalars("act/block/mean")
    assert [p.value for p in mean] == [2.0]
