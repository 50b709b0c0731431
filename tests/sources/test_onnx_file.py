"""ONNX: protobuf → Graph IR without executing anything; external data read by us."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from deepscope.errors import ModelFormatError  # noqa: E402
from deepscope.sources import load_model, onnx_file  # noqa: E402


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(8, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv1(x).mean((2, 3)))


def save_external(proto: onnx.ModelProto, path: Path, location: str = "w.bin") -> None:
    """Move every initializer of `proto` into `location` next to `path`, then save."""
    from onnx.external_data_helper import convert_model_to_external_data

    convert_model_to_external_data(proto, location=location, size_threshold=0)
    onnx.save(proto, str(path))


def _export(model: nn.Module, x: torch.Tensor, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(path), dynamo=False)
    return path


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: nn.Sequential(Block(), nn.Linear(4, 3)), (1, 3, 8, 8)),
        (
            lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 2)),
            (2, 3, 4),
        ),
    ],
)
def test_parameter_total_equals_the_live_model(tmp_path: Path, make, shape) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = make()
    path = _export(net, torch.randn(*shape), tmp_path / "m.onnx")
    model = load_model(path)
    assert model.format == "onnx"
    unique = {p.name: p.numel for n in model.graph.nodes for p in n.params}
    assert sum(unique.values()) == sum(p.numel() for p in net.parameters())
    assert sum(int(np.prod(w.shape)) for w in model.weights.values()) == sum(
        p.numel() for p in net.parameters()
    )
    for name, p in net.named_parameters():
        np.testing.assert_allclose(model.weights[name].values, p.detach().numpy(), rtol=1e-6)


def test_namespaces_shapes_and_edges_follow_the_exported_modules(tmp_path: Path) -> None:
    path = _export(
        nn.Sequential(Block(), nn.Linear(4, 3)), torch.randn(1, 3, 8, 8), tmp_path / "m.onnx"
    )
    g = onnx_file.load(path).graph
    by_op = {n.op: n for n in g.nodes}
    conv = by_op["conv"]
    assert conv.namespace == "0/conv1"
    assert conv.outputs[0].shape == (1, 8, 8, 8)
    assert by_op["relu"].namespace == "0/head/0"
    assert {n.namespace for n in g.nodes if n.op == "linear"} == {"0/head/1", "1"}
    ids = {n.id for n in g.nodes}
    assert all(e.src in ids and e.dst in ids for e in g.edges)
    assert any(e.src == g.inputs[0] and e.dst == conv.id for e in g.edges)
    assert any(e.dst == g.outputs[0] for e in g.edges)


def test_if_subgraphs_become_nested_groups(tmp_path: Path) -> None:
    def branch(name: str, op: str) -> onnx.GraphProto:
        return helper.make_graph(
            [helper.make_node(op, ["x"], [f"{name}_out"], name=f"{name}_node")],
            name,
            [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [2])],
        )

    graph = helper.make_graph(
        [
            helper.make_node("ReduceSum", ["x"], ["s"], name="sum", keepdims=0),
            helper.make_node("Greater", ["s", "zero"], ["c"], name="cmp"),
            helper.make_node(
                "If",
                ["c"],
                ["y"],
                name="choose",
                then_branch=branch("then", "Relu"),
                else_branch=branch("else", "Neg"),
            ),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [numpy_helper.from_array(np.array(0.0, np.float32), "zero")],
    )
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    g = onnx_file.load(path).graph
    relu = next(n for n in g.nodes if n.op == "relu")
    neg = next(n for n in g.nodes if n.op == "neg")
    assert relu.namespace == "choose.then_branch"
    assert neg.namespace == "choose.else_branch"
    x_input = g.inputs[0]
    assert any(e.src == x_input and e.dst == relu.id for e in g.edges)  # outer-scope tensor
    assert len({n.id for n in g.nodes}) == len(g.nodes)


def test_op_and_name_normalisation() -> None:
    assert onnx_file.normalise_op("GlobalAveragePool") == "global_average_pool"
    assert onnx_file.normalise_op("Gemm") == "linear"
    assert onnx_file.namespace_from_name("/layer1/layer1.0/conv1/Conv") == "layer1/0/conv1"
    assert onnx_file.namespace_from_name("Conv_0") == ""


def test_valid_external_data_is_read(tmp_path: Path) -> None:
    path = _export(nn.Linear(300, 300), torch.randn(1, 300), tmp_path / "big.onnx")
    proto = onnx.load(str(path))
    expected = numpy_helper.to_array(proto.graph.initializer[1])
    save_external(proto, path)
    model = onnx_file.load(path)
    assert model.weights["bias"].values is not None
    np.testing.assert_allclose(model.weights["bias"].values, expected)
    assert (tmp_path / "w.bin").exists()
    structure = onnx_file.load(path, external_data=False)
    assert (
        structure.weights["bias"].values is None
        and "external data not loaded" in structure.notes[0]
    )


@pytest.mark.parametrize("content", [b"", b"\xff\xff\xff garbage", b"\x0a\xff\xff\xff\xff"])
def test_garbage_gives_a_format_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    try:
        model = onnx_file.load(path)
    except ModelFormatError:
        return
    assert model.graph.nodes == []  # protobuf accepts some bytes as an empty model


def test_old_onnx_is_refused() -> None:
    from deepscope.errors import OptionalDependencyError
    from deepscope.sources import _limits

    with pytest.raises(OptionalDependencyError, match="1.21.0"):
        _limits.check_onnx_version("1.20.1")
