"""ONNX params of weights the graph generates (ConstantOfShape, RandomNormal, Constant).

onnx's shipped `light_*.onnx` models replace every weight initializer by a ConstantOfShape
of a constant shape vector; their parameter totals must still be the architecture's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

from onnx import TensorProto as TP  # noqa: E402
from onnx import helper as h  # noqa: E402
from onnx import numpy_helper as nh  # noqa: E402

import deepscope  # noqa: E402
from deepscope.sources import load_model  # noqa: E402

_LIGHT = Path(onnx.__file__).parent / "backend/test/data/light"

# AlexNet (bvlc): convs 96x3x11x11, 256x48x5x5, 384x256x3x3, 384x192x3x3, 256x192x3x3 (+bias),
# fc 4096x9216, 4096x4096, 1000x4096 (+bias)
ALEXNET = (
    (96 * 3 * 121 + 96)
    + (256 * 48 * 25 + 256)
    + (384 * 256 * 9 + 384)
    + (384 * 192 * 9 + 384)
    + (256 * 192 * 9 + 256)
    + (4096 * 9216 + 4096)
    + (4096 * 4096 + 4096)
    + (1000 * 4096 + 1000)
)
_VGG19_CONVS = [(64, 3), (64, 64), (128, 64), (128, 128), (256, 128)] + [(256, 256)] * 3
_VGG19_CONVS += [(512, 256)] + [(512, 512)] * 7
VGG19 = sum(o * i * 9 + o for o, i in _VGG19_CONVS) + (
    (4096 * 25088 + 4096) + (4096 * 4096 + 4096) + (1000 * 4096 + 1000)
)
RESNET50 = 25_557_032  # torchvision's trainable count; the file also holds BN running stats


def test_reference_counts_are_the_known_architecture_totals() -> None:
    assert ALEXNET == 60_965_224
    assert VGG19 == 143_667_240


@pytest.mark.parametrize(
    "name, reference",
    [("light_bvlc_alexnet", ALEXNET), ("light_resnet50", RESNET50), ("light_vgg19", VGG19)],
)
def test_light_models_count_their_generated_weights(name: str, reference: int) -> None:
    path = _LIGHT / f"{name}.onnx"
    if not path.exists():
        pytest.skip("onnx wheel without backend test data")
    model = load_model(path)
    total = deepscope.summary(model).total_params
    assert abs(total - reference) <= 0.01 * reference, (total, reference)
    convs = [n for n in model.graph.nodes if n.op == "conv"]
    assert all(sum(p.numel for p in n.params) > 4 for n in convs)  # not the shape vector
    assert not any(n.params for n in model.graph.nodes if n.op == "constant_of_shape")


def test_first_alexnet_conv_holds_its_weight_and_bias() -> None:
    path = _LIGHT / "light_bvlc_alexnet.onnx"
    if not path.exists():
        pytest.skip("onnx wheel without backend test data")
    conv = next(n for n in load_model(path).graph.nodes if n.op == "conv")
    assert sorted(p.shape for p in conv.params) == [(96,), (96, 3, 11, 11)]


def _tiny(tmp_path: Path) -> Path:
    """Conv(initializer weight, ConstantOfShape bias) -> Gemm(RandomNormal B) + a ones mask."""
    w = nh.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    b_shape = nh.from_array(np.array([8], np.int64), "b_shape")
    m_shape = nh.from_array(np.array([1, 8], np.int64), "m_shape")
    flat = nh.from_array(np.array([1, 8 * 4 * 4], np.int64), "flat")
    nodes = [
        h.make_node(
            "ConstantOfShape", ["b_shape"], ["b"], value=h.make_tensor("v", TP.FLOAT, [1], [0.0])
        ),
        h.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
        h.make_node("Reshape", ["c", "flat"], ["f"], name="flatten"),
        h.make_node("RandomNormal", [], ["B"], shape=[128, 5]),
        h.make_node("Gemm", ["f", "B"], ["g"], name="fc"),
        h.make_node("ConstantOfShape", ["m_shape"], ["ones"]),  # a mask, not a weight
        h.make_node("Mul", ["g", "ones"], ["y"], name="mask"),
    ]
    graph = h.make_graph(
        nodes,
        "tiny",
        [h.make_tensor_value_info("x", TP.FLOAT, [1, 3, 6, 6])],
        [h.make_tensor_value_info("y", TP.FLOAT, [1, 5])],
        [w, b_shape, m_shape, flat],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, tmp_path / "tiny.onnx")
    return tmp_path / "tiny.onnx"


def test_initializer_and_generated_weights_both_count(tmp_path: Path) -> None:
    model = load_model(_tiny(tmp_path))
    nodes = {n.label: n for n in model.graph.nodes}
    assert sorted(p.numel for p in nodes["conv"].params) == [8, 216]
    assert [p.shape for p in nodes["fc"].params] == [(128, 5)]
    assert nodes["mask"].params == []
    # conv 216 + 8, fc 640, the Reshape's shape vector 2 (an initializer read as is)
    assert deepscope.summary(model).total_params == 216 + 8 + 640 + 2
    s = deepscope.summary(model)
    assert s.total_macs == 4 * 4 * 8 * (27 + 1) + 5 * 128
