"""ONNX MACs from ops and shapes match the live model's (the same conventions, _macs.py)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

onnx = pytest.importorskip("onnx")

import deepscope  # noqa: E402
from deepscope.sources import load_model  # noqa: E402


class CNN(nn.Module):
    def __init__(self, bn: bool = False) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16) if bn else nn.Identity()
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(16, 32, 3, groups=2)
        self.up = nn.ConvTranspose2d(32, 8, 2, stride=2)
        self.avg = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn(self.c1(x))))
        x = self.avg(self.up(self.c2(x)))
        return self.fc(self.gap(x).flatten(1))


class Mixer(nn.Module):
    """Transformer-ish: MHA, LayerNorm, MLP, SDPA, einsum and a plain matmul on 3-D inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(16, 32)
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.norm = nn.LayerNorm(32)
        self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
        self.q = nn.Linear(32, 32)
        self.k = nn.Linear(32, 32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        a, _ = self.attn(h, h, h)
        h = self.norm(h + a)
        h = h + self.mlp(h)
        b, t, _ = h.shape
        q = self.q(h).view(b, t, 4, 8).transpose(1, 2)
        k = self.k(h).view(b, t, 4, 8).transpose(1, 2)
        o = nn.functional.scaled_dot_product_attention(q, k, k).transpose(1, 2).reshape(b, t, 32)
        mixed = torch.einsum("btd,bsd->bts", o, h)
        return mixed @ h


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 16, num_layers=2)
        self.gru = nn.GRU(16, 12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(self.lstm(x)[0])[0]


def _export(model: nn.Module, x: torch.Tensor, path: Path, **kw: Any) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (x,), str(path), dynamo=False, opset_version=17, **kw)
    return path


def _live_and_onnx(make: Callable[[], nn.Module], x: torch.Tensor, tmp: Path) -> tuple[int, int]:
    torch.manual_seed(0)
    model = make().eval()
    live = deepscope.summary(model, x).total_macs
    onnx_macs = deepscope.summary(load_model(_export(model, x, tmp / "m.onnx"))).total_macs
    return live, onnx_macs


@pytest.mark.parametrize(
    "make, shape",
    [(CNN, (2, 3, 16, 16)), (Mixer, (2, 10, 16)), (Recurrent, (5, 3, 8))],
    ids=["cnn", "transformer", "recurrent"],
)
def test_onnx_macs_match_the_live_model(
    tmp_path: Path, make: Callable[[], nn.Module], shape: tuple[int, ...]
) -> None:
    live, onnx_macs = _live_and_onnx(make, torch.randn(*shape), tmp_path)
    assert live > 0
    assert abs(onnx_macs - live) <= 0.01 * live, (live, onnx_macs)


def test_batchnorm_folded_by_the_exporter_is_the_only_difference(tmp_path: Path) -> None:
    live, onnx_macs = _live_and_onnx(lambda: CNN(bn=True), torch.randn(2, 3, 16, 16), tmp_path)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "BatchNormalization" not in ops  # folded into the Conv before it
    assert live - onnx_macs == 2 * (2 * 16 * 16 * 16)  # 2 MACs per BN output element


def test_symbolic_batch_counts_as_one_and_says_so(tmp_path: Path) -> None:
    model = CNN().eval()
    x = torch.randn(1, 3, 16, 16)
    axes = {"x": {0: "batch"}, "y": {0: "batch"}}
    path = _export(
        model, x, tmp_path / "dyn.onnx", input_names=["x"], output_names=["y"], dynamic_axes=axes
    )
    loaded = load_model(path)
    assert "symbolic" in loaded.graph.meta["macsNote"]
    assert deepscope.summary(loaded).total_macs == deepscope.summary(model, x).total_macs


_LIGHT = Path(onnx.__file__).parent / "backend/test/data/light"


@pytest.mark.parametrize(
    "name, low, high",
    [
        ("light_resnet50", 3.9e9, 4.2e9),  # ResNet-50: 4.1 GMACs
        ("light_vgg19", 19.5e9, 19.8e9),  # VGG-19: 19.6 GMACs
        ("light_squeezenet", 0.3e9, 0.4e9),
        ("light_densenet121", 2.7e9, 3.0e9),
    ],
)
def test_shipped_onnx_models_have_known_macs(name: str, low: float, high: float) -> None:
    path = _LIGHT / f"{name}.onnx"
    if not path.exists():
        pytest.skip("onnx wheel without backend test data")
    total = deepscope.summary(load_model(path)).total_macs
    assert low <= total <= high


def test_bert_export_macs_match_the_live_model(tmp_path: Path) -> None:
    """Attention reshapes leave `?` dims (heads, hidden); MatMuls take them from the operands."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=3,
        max_position_embeddings=32,
        attn_implementation="eager",
    )

    class Bert(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = transformers.BertForSequenceClassification(config)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m(x, return_dict=False)[0]  # type: ignore[no-any-return]

    live, onnx_macs = _live_and_onnx(Bert, torch.randint(1, 100, (1, 8)), tmp_path)
    assert live == 146_563
    assert onnx_macs == live


def _matmul_model(tmp_path: Path, with_unknown_rank: bool) -> Path:
    from onnx import TensorProto as TP
    from onnx import helper as h
    from onnx import numpy_helper as nh

    w = nh.from_array(torch.ones(32, 32).numpy(), "w")
    shape = h.make_tensor_value_info("s", TP.INT64, [3])
    nodes = [
        h.make_node("Reshape", ["x", "s"], ["r"], name="reshape"),  # [1, 8, ?] for inference
        h.make_node("MatMul", ["r", "w"], ["y"], name="dense"),
    ]
    outputs = [h.make_tensor_value_info("y", TP.FLOAT, None)]
    inputs = [h.make_tensor_value_info("x", TP.FLOAT, [1, 8, 32]), shape]
    if with_unknown_rank:
        inputs.append(h.make_tensor_value_info("z", TP.FLOAT, None))
        nodes.append(h.make_node("MatMul", ["z", "z"], ["zz"], name="blind"))
        outputs.append(h.make_tensor_value_info("zz", TP.FLOAT, None))
    graph = h.make_graph(nodes, "mm", inputs, outputs, [w])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.graph.value_info.append(h.make_tensor_value_info("r", TP.FLOAT, [1, 8, None]))
    onnx.save(model, tmp_path / "mm.onnx")
    return tmp_path / "mm.onnx"


def test_matmul_takes_an_unknown_inner_dim_from_the_weight(tmp_path: Path) -> None:
    loaded = load_model(_matmul_model(tmp_path, with_unknown_rank=False))
    dense = next(n for n in loaded.graph.nodes if n.label == "dense")
    assert dense.macs == 8 * 32 * 32  # K from the [32, 32] initializer, not 1
    assert "partial" not in loaded.graph.meta.get("macsNote", "")


def test_nodes_of_unknown_shape_make_the_total_partial(tmp_path: Path) -> None:
    loaded = load_model(_matmul_model(tmp_path, with_unknown_rank=True))
    assert loaded.graph.meta["macsNote"].startswith("partial: 1 nodes")
    text = str(deepscope.summary(loaded))
    assert "MACs note: partial: 1 nodes with unknown shapes" in text
    assert "Total mult-adds (MACs): 8,192" in text
