"""The live nn.Module source on the zoo: params, MACs, shapes on edges, trace paths."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torchinfo import summary as torchinfo_summary
from zoo import ZOO

from deepscope.errors import DeepscopeError, ModelFormatError
from deepscope.graph.serialize import from_json, to_json
from deepscope.sources import graph as source_graph
from deepscope.sources import load_model
from deepscope.sources.torch_module import graph, match


def _unique_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() already dedups shared


@pytest.mark.parametrize("name", sorted(ZOO))
def test_root_group_counts_every_unique_parameter(name: str) -> None:
    model, x = ZOO[name]()
    g = graph(model, x)
    assert g.groups[""].params == _unique_params(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert g.groups[""].trainable_params == trainable
    assert g.groups[""].frozen_params == _unique_params(model) - trainable


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_edge_joins_agreeing_shapes(name: str) -> None:
    model, x = ZOO[name]()
    g = graph(model, x)
    by_id = {n.id: n for n in g.nodes}
    assert len(by_id) == len(g.nodes), "node ids are unique"
    assert g.edges
    for e in g.edges:
        src, dst = by_id[e.src], by_id[e.dst]
        assert e.tensor is not None and e.tensor.shape is not None
        assert src.outputs[e.src_output] == e.tensor == dst.inputs[e.dst_input]
    assert all(by_id[i].op == "input" for i in g.inputs)
    assert all(by_id[o].op == "output" for o in g.outputs)
    assert from_json(to_json(g)) == g


@pytest.mark.parametrize("name", sorted(ZOO))
def test_graph_output_shapes_match_the_real_forward(name: str) -> None:
    model, x = ZOO[name]()
    g = graph(model, x)
    with torch.no_grad():
        out = model(*x) if isinstance(x, tuple) else model(x)
    outs = list(out.values()) if isinstance(out, dict) else [out]
    assert g.groups[""].output_shapes == [tuple(o.shape) for o in outs]


def test_mlp_macs_equal_hand_count_and_torchinfo() -> None:
    model, x = ZOO["mlp"]()
    g = graph(model, x)
    hand = 3 * (8 * 16 + 16) + 3 * (16 * 4 + 4)  # batch x (in x out + bias) per linear
    assert g.groups[""].macs == hand
    assert torchinfo_summary(model, input_data=x, verbose=0).total_mult_adds == hand
    assert g.groups["fc1"].macs == 3 * (8 * 16 + 16)


def test_cnn_conv_and_linear_macs_equal_torchinfo() -> None:
    model, x = ZOO["cnn"]()
    g = graph(model, x)
    conv_linear = sum(n.macs for n in g.nodes if n.op in ("conv2d", "linear"))
    assert conv_linear == torchinfo_summary(model, input_data=x, verbose=0).total_mult_adds
    first_conv = g.groups["features/0"].macs
    assert first_conv == 2 * 16 * 16 * 8 * (3 * 3 * 3 + 1)
    pool = g.groups["features/2"].macs  # MaxPool2d(2): 4 reads per output element
    assert pool == 2 * 8 * 8 * 8 * 4


def test_attention_and_lstm_macs_equal_hand_counts() -> None:
    model, x = ZOO["attention"]()
    g = graph(model, x)
    n, seq, e = 2, 5, 16
    proj = 3 * seq * e * e + 3 * seq * e
    attn = 2 * seq * seq * e
    out = seq * e * e + seq * e
    assert g.groups["attn"].macs == n * (proj + attn + out)
    assert g.groups["norm"].macs == 2 * n * seq * e

    model, x = ZOO["lstm"]()
    g = graph(model, x)
    per_step = 4 * 16 * (8 + 16) + 2 * 4 * 16
    assert g.groups["rnn"].macs == 2 * 5 * per_step


def test_shared_block_is_two_calls_with_params_counted_once() -> None:
    model, x = ZOO["resnet"]()
    g = graph(model, x)
    shared = sum(p.numel() for p in model.shared.parameters())
    assert g.groups["shared"].params == shared
    assert len([n for n in g.nodes if n.namespace == "shared/conv1"]) == 2
    assert g.groups["shared"].module_type == "BasicBlock"
    assert g.groups["layer1/0"].output_shapes == [(2, 8, 8, 8)]


def test_tied_frozen_parameter_counts_once_and_as_frozen() -> None:
    model, x = ZOO["two_inputs"]()
    g = graph(model, x)
    assert len(g.inputs) == 2
    out = g.node(g.outputs[0])
    assert [t.shape for t in out.inputs] == [(3, 8), (3, 8)]
    assert g.groups[""].frozen_params == 8 * 8 + 8
    assert [p.name for p in g.node("dec").params] == ["frozen.weight"]


def test_dict_inputs_are_keyword_arguments() -> None:
    model, (a, b) = ZOO["two_inputs"]()
    g = graph(model, {"b": b, "a": a})
    assert [g.node(i).outputs[0].shape for i in g.inputs] == [(3, 6), (3, 4)]


def test_trace_paths_are_recorded_with_reasons() -> None:
    model, x = ZOO["mlp"]()
    assert graph(model, x).meta["trace"] == "fx"
    model, x = ZOO["data_dependent"]()
    g = graph(model, x)
    assert g.meta["trace"] == "hooks"
    assert any(n.startswith("fx failed") and "control flow" in n for n in g.meta["traceNotes"])
    # the branch taken for x = ones is `pos`; `neg` parameters still count (unused)
    assert {n.namespace for n in g.nodes if n.op == "linear"} == {"pos"}
    assert {p["name"] for p in g.meta["unusedParams"]} == {"neg.weight", "neg.bias"}


def test_transformer_encoder_is_traced_into_its_layers() -> None:
    model, x = ZOO["transformer"]()
    g = graph(model.eval(), x)
    ops = [n.op for n in g.nodes]
    assert ops.count("multiheadattention") == 2 and ops.count("layernorm") == 4
    assert g.groups["encoder/layers/1"].module_type == "TransformerEncoderLayer"
    assert g.groups["encoder"].output_shapes == [(2, 7, 32)]


def test_tracing_leaves_batchnorm_statistics_and_hooks_untouched() -> None:
    model, x = ZOO["resnet"]()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    graph(model, x, trace="hooks")
    graph(model, x)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


class _Broken(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > -1e9:
            raise RuntimeError("boom")
        return self.fc(x)


def test_a_model_that_cannot_run_raises_a_clear_error_and_removes_hooks() -> None:
    model = _Broken()
    with pytest.raises(ModelFormatError, match="boom") as info:
        graph(model, torch.zeros(1, 3))
    assert "fx failed" in str(info.value) and "example inputs" in str(info.value)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_missing_example_inputs_says_what_to_pass() -> None:
    with pytest.raises(DeepscopeError, match="example_inputs"):
        graph(nn.Linear(2, 2), None)


def test_package_entry_points_dispatch_live_modules() -> None:
    model, x = ZOO["mlp"]()
    assert match(model) and not match("model.onnx")
    assert source_graph(model, x).groups[""].params == 212
    m = load_model(model, example_inputs=x)
    assert m.format == "torch" and set(m.weights) == {
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    }
    assert m.graph.groups[""].macs == 636


def test_export_path_agrees_on_params_and_macs() -> None:
    model, x = ZOO["cnn"]()
    fx_graph = graph(model, x)
    ex = graph(model, x, trace="export")
    assert ex.meta["trace"] == "export"
    assert ex.groups[""].params == fx_graph.groups[""].params
    assert ex.groups[""].macs == fx_graph.groups[""].macs
    assert ex.groups["features/3"].macs == fx_graph.groups["features/3"].macs


def _inputs(x: Any) -> Any:
    return x


class _Walked(nn.Module):
    """getitem on a tuple, a parameter used directly, and shape arithmetic with no tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.gain = nn.Parameter(torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.chunk(self.fc(x), 2, dim=1)
        n = x.shape[0] * 2
        return (a * self.gain + b).repeat(n, 1)


@pytest.mark.parametrize("trace", ["fx", "export"])
def test_fx_and_export_walks_draw_the_same_structure(trace: str) -> None:
    g = graph(_Walked(), torch.zeros(3, 4), trace=trace)
    assert g.meta["trace"] == trace
    ops = [n.op for n in g.nodes]
    assert "getitem" not in ops and ops.count("input") == 1 and ops.count("output") == 1
    by_id = {n.id: n for n in g.nodes}
    chunk = next(n for n in g.nodes if n.op in {"chunk", "split"})
    assert len(chunk.outputs) == 2 and all(o.shape == (3, 2) for o in chunk.outputs)
    from_chunk = sorted(e.src_output for e in g.edges if e.src == chunk.id)
    assert from_chunk == [0, 1]  # each half feeds its own consumer, as plain edges
    assert any(p.name == "gain" for n in g.nodes for p in n.params)
    assert g.groups[""].params == 4 * 4 + 4 + 2
    out = by_id[g.outputs[0]]
    assert out.inputs[0].shape == (18, 2)
