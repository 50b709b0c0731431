"""`activations(...)` against a hand-written forward-hook capture, on torch models: every
captured tensor must be exactly what the hooked layer output, and no hook may remain."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.analysis.activations import activations
from deepscope.capture.select import LayerSelectionError
from deepscope.errors import DeepscopeError


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=True),  # modifies the conv output in place: the capture must copy
        nn.MaxPool2d(2),
        nn.Conv2d(8, 4, 3),
        nn.BatchNorm2d(4),
        nn.Flatten(),
        nn.Linear(4 * 6 * 6, 5),
    ).eval()


def _by_hand(model: nn.Module, x: Any, names: list[str]) -> dict[str, list[Any]]:
    """Forward hooks written out, the way a user would: a clone of every output per call."""
    modules = dict(model.named_modules())
    seen: dict[str, list[Any]] = {n: [] for n in names}
    handles = []
    for n in names:

        def hook(_m: nn.Module, _i: Any, out: Any, n: str = n) -> None:
            seen[n].append(out.clone() if isinstance(out, torch.Tensor) else _clone_nested(out))

        handles.append(modules[n].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def _clone_nested(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    return type(value)(_clone_nested(v) for v in value)


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_cnn_capture_equals_hand_hooks_for_every_leaf() -> None:
    net = _cnn()
    x = torch.rand(3, 3, 16, 16)
    acts = activations(net, x)
    names = [str(i) for i in range(7)]
    assert acts.layers == names
    hand = _by_hand(net, x, names)
    for n in names:
        assert torch.equal(acts[n], hand[n][0]), n
        assert acts[n].device.type == "cpu"
    # the in-place ReLU overwrote the conv's output tensor; the capture kept the conv's values
    assert (acts["0"] < 0).any() and not (acts["1"] < 0).any()


def test_selectors_names_globs_types_and_modules() -> None:
    net = nn.Sequential()
    net.add_module("features", nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 1)))
    net.add_module("head", nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3)))
    x = torch.rand(2, 1, 6, 6)
    assert activations(net, x, "features.*").layers == ["features.0", "features.1", "features.2"]
    assert activations(net, x, nn.Conv2d).layers == ["features.0", "features.2"]
    assert activations(net, x, ["head", net.features[1]]).layers == ["features.1", "head"]
    assert activations(net, x, "head.1").layers == ["head.1"]


def test_reused_module_gives_one_entry_per_call() -> None:
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.block = nn.Linear(4, 4)
            self.out = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.out(torch.relu(self.block(torch.relu(self.block(x)))))

    torch.manual_seed(1)
    net = Twice()
    x = torch.randn(5, 4)
    acts = activations(net, x)
    assert acts.layers == ["block@1", "block@2", "out"]
    hand = _by_hand(net, x, ["block", "out"])
    assert torch.equal(acts["block@1"], hand["block"][0])
    assert torch.equal(acts["block@2"], hand["block"][1])
    assert not torch.equal(acts["block@1"], acts["block@2"])
    assert acts.calls("block") == ["block@1", "block@2"]
    with pytest.raises(KeyError, match="ran 2 times"):
        acts["block"]


def test_lstm_tuple_output_is_captured_part_by_part() -> None:
    class Tagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.lstm = nn.LSTM(4, 6, num_layers=2, batch_first=True)
            self.head = nn.Linear(6, 3)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            out, _ = self.lstm(self.emb(ids))
            return self.head(out)

    torch.manual_seed(2)
    net = Tagger()
    ids = torch.randint(0, 10, (2, 7))
    acts = activations(net, ids)
    assert acts.layers == ["emb", "lstm:0", "lstm:1.0", "lstm:1.1", "head"]
    out, (h, c) = _by_hand(net, ids, ["lstm"])["lstm"][0]
    assert torch.equal(acts["lstm:0"], out)
    assert torch.equal(acts["lstm:1.0"], h) and torch.equal(acts["lstm:1.1"], c)
    with pytest.raises(KeyError, match="pick a part"):
        acts["lstm"]
    picture = acts.feature_maps("lstm:0", tokens=[str(int(t)) for t in ids[0]])
    assert picture.kind == "sequence" and picture.values.shape == (7, 6)


def test_mapping_outputs_are_captured_by_key() -> None:
    transformers = pytest.importorskip("transformers")
    from transformers.modeling_outputs import BaseModelOutput

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> Any:
            h = self.lin(x)
            return BaseModelOutput(last_hidden_state=h, hidden_states=(x, h))

    net = nn.Sequential()
    net.add_module("enc", Encoder())
    x = torch.randn(2, 4, 3)
    acts = activations(net.enc, x)
    assert "lin" in acts.layers
    outer = activations(net, x, "enc")
    assert outer.layers == [
        "enc:last_hidden_state",
        "enc:hidden_states.0",
        "enc:hidden_states.1",
    ]
    assert torch.equal(outer["enc:hidden_states.0"], x)
    assert torch.equal(outer["enc:last_hidden_state"], net.enc.lin(x).detach())
    del transformers


def test_no_hook_remains_after_success_or_a_raising_forward() -> None:
    class Boom(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    net = _cnn()
    before = _hook_count(net)
    activations(net, torch.rand(1, 3, 16, 16))
    activations(net, torch.rand(1, 3, 16, 16), keep="stats")
    assert _hook_count(net) == before == 0
    broken = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), Boom())
    with pytest.raises(RuntimeError, match="boom"):
        activations(broken, torch.rand(1, 3, 8, 8))
    assert _hook_count(broken) == 0


def test_max_bytes_keeps_the_first_items_and_says_so() -> None:
    net = _cnn()
    x = torch.rand(6, 3, 16, 16)
    full = activations(net, x)
    per_item = sum(t[0].numel() * t.element_size() for t in full.tensors.values())
    with pytest.warns(UserWarning, match="keeps the first 2 of 6"):
        capped = activations(net, x, max_bytes=2 * per_item + 10)
    assert capped.meta["kept_items"] == 2 and capped.meta["batch"] == 6
    assert capped.meta["bytes"] <= 2 * per_item + 10
    for n in full.layers:
        assert torch.equal(capped[n], full[n][:2])
    with pytest.raises(DeepscopeError, match="less than one input"):
        activations(net, x, max_bytes=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert activations(net, x, max_bytes=10 * per_item).meta["kept_items"] == 6


def test_keep_stats_holds_per_unit_statistics_not_tensors() -> None:
    net = _cnn()
    x = torch.rand(4, 3, 16, 16)
    full = activations(net, x)
    stats = activations(net, x, keep="stats")
    assert stats.tensors == {}
    s = stats.stats["1"]
    per_unit = full["1"].transpose(0, 1).reshape(8, -1).double()
    torch.testing.assert_close(s.mean, per_unit.mean(1))
    torch.testing.assert_close(s.std, per_unit.std(1, unbiased=False))
    torch.testing.assert_close(s.max, per_unit.max(1).values)
    torch.testing.assert_close(s.zero_fraction, (per_unit == 0).double().mean(1))
    assert stats.stats["6"].mean.shape == (5,)
    with pytest.raises(KeyError, match="keep='stats'"):
        stats["1"]


def test_inputs_of_another_dtype_or_numpy_are_moved_to_the_model() -> None:
    net = _cnn()
    x = torch.rand(2, 3, 16, 16)
    ref = activations(net, x)
    from64 = activations(net, x.double())
    from_np = activations(net, x.numpy().astype(np.float64))
    for n in ref.layers:
        assert from64[n].dtype == torch.float32
        assert torch.equal(from64[n], ref[n]) and torch.equal(from_np[n], ref[n])


def test_unknown_layer_lists_close_matches() -> None:
    net = nn.Sequential()
    net.add_module("features", nn.Conv2d(1, 2, 3))
    net.add_module("classifier", nn.Linear(2, 2))
    with pytest.raises(LayerSelectionError, match="close matches: 'features'"):
        activations(net, torch.rand(1, 1, 3, 3), "featurs")
    with pytest.raises(LayerSelectionError, match="no layer matches 'body.*'"):
        activations(net, torch.rand(1, 1, 3, 3), "body.*")
    with pytest.raises(LayerSelectionError, match="no layer of type LSTM"):
        activations(net, torch.rand(1, 1, 3, 3), nn.LSTM)
    with pytest.raises(DeepscopeError, match="keep must be"):
        activations(net, torch.rand(1, 1, 3, 3), keep="some")  # type: ignore[arg-type]


def test_a_layer_that_never_runs_says_so() -> None:
    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Linear(2, 2)
            self.unused = nn.Linear(2, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.used(x)

    net = Skips()
    with pytest.raises(LayerSelectionError, match="'unused' did not run"):
        activations(net, torch.rand(1, 2), "unused")
    with pytest.warns(UserWarning, match="'unused' did not run"):
        acts = activations(net, torch.rand(1, 2))
    assert acts.layers == ["used"] and acts.meta["not_run"] == ["unused"]
    assert _hook_count(net) == 0
