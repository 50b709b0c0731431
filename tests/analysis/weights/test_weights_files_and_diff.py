"""deepscope.weights / deepscope.diff on files (through the safe loaders) and live models;
the diff names exactly what changed (issue 15)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import save_file

import deepscope
from deepscope.errors import UnsafeModelError

BIG = (300, 300)  # over the sources' small-tensor limit: values are read on demand


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "enc.weight": torch.randn(*BIG, generator=g),
        "enc.bias": torch.randn(300, generator=g),
        "head.weight": torch.randn(4, 300, generator=g),
    }


def _assert_same_values(w: Any, tensors: dict[str, torch.Tensor]) -> None:
    assert sorted(w.tensors) == sorted(tensors)  # safetensors stores names sorted
    for name, t in tensors.items():
        np.testing.assert_array_equal(w.values(name), t.float().numpy())
        assert w.stats()[name]["l2"] == pytest.approx(float(t.double().norm()))


def test_safetensors_values_and_bf16(tmp_path: Path) -> None:
    tensors = _tensors()
    tensors["head.weight"] = tensors["head.weight"].bfloat16()
    save_file(tensors, tmp_path / "m.safetensors")
    w = deepscope.weights(tmp_path / "m.safetensors")
    assert w.source == "safetensors" and w.tensors["head.weight"].dtype == "bfloat16"
    _assert_same_values(w, tensors)


def test_state_dict_large_tensors_are_read(tmp_path: Path) -> None:
    tensors = _tensors()
    torch.save(tensors, tmp_path / "m.pt")
    w = deepscope.weights(str(tmp_path / "m.pt"))
    assert w.source == "state_dict"
    _assert_same_values(w, tensors)


def _onnx_model(tensors: dict[str, torch.Tensor]) -> onnx.ModelProto:
    inits = [numpy_helper.from_array(t.numpy(), n) for n, t in tensors.items()]
    node = helper.make_node("Gemm", ["x", "enc.weight", "enc.bias"], ["y"], transB=1)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 300])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 300])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("external", [False, True])
def test_onnx_initializers_internal_and_external(tmp_path: Path, external: bool) -> None:
    tensors = _tensors()
    proto = _onnx_model(tensors)
    path = tmp_path / "m.onnx"
    if external:
        onnx.save_model(
            proto, str(path), save_as_external_data=True, location="w.bin", size_threshold=1024
        )
        assert (tmp_path / "w.bin").stat().st_size > 300 * 300 * 4
    else:
        onnx.save_model(proto, str(path))
    w = deepscope.weights(path)
    assert w.source == "onnx"
    _assert_same_values(w, tensors)


class Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


def test_M1_pickle_with_a_global_is_refused_by_weights_and_diff(tmp_path: Path) -> None:
    sentinel = tmp_path / "SENTINEL"
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "x": Payload(sentinel)}, evil)
    with pytest.raises(UnsafeModelError, match="system"):
        deepscope.weights(evil)
    with pytest.raises(UnsafeModelError):
        deepscope.diff({"w": torch.zeros(2)}, evil)
    assert not sentinel.exists()


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(36, 5)
    )


def test_diff_of_a_copy_with_one_layer_changed_names_exactly_that_layer() -> None:
    a = _net()
    b = copy.deepcopy(a)
    same = deepscope.diff(a, b)
    assert same.changed == [] and all(r["equal"] for r in same.rows.values())
    with torch.no_grad():
        b[3].weight[2, 7] += 0.5
    d = deepscope.diff(a, b)
    assert d.changed == ["3.weight"] and not (d.added or d.removed or d.reshaped)
    row = d.rows["3.weight"]
    assert row["max_abs"] == pytest.approx(0.5) and row["norm_delta"] == pytest.approx(0.5)
    assert row["rel_delta"] == pytest.approx(0.5 / float(a[3].weight.detach().norm()), rel=1e-5)
    assert 0.9 < row["cosine"] < 1.0
    assert d.rows["0.weight"]["norm_delta"] == 0.0 and d.rows["0.weight"][
        "cosine"
    ] == pytest.approx(1)
    csv = d.to_csv().splitlines()
    assert csv[0] == "name,status,norm_delta,rel_delta,cosine,max_abs,equal"
    assert [ln.split(",")[1] for ln in csv[1:]] == ["same", "same", "changed", "same"]
    tiny = copy.deepcopy(a)
    with torch.no_grad():
        tiny[0].bias[1] += 1e-6  # any difference counts, however small
    assert deepscope.diff(a, tiny).changed == ["0.bias"]
    g = d.heatmap("3.weight")
    assert g.ranges[0] == pytest.approx((-0.5, 0.5))


def test_diff_reports_added_removed_and_reshaped(tmp_path: Path) -> None:
    a = {"x.weight": torch.ones(2, 2), "gone.bias": torch.zeros(3), "r.weight": torch.ones(2)}
    b = {"x.weight": torch.ones(2, 2), "new.bias": torch.zeros(3), "r.weight": torch.ones(3)}
    save_file(b, tmp_path / "b.safetensors")
    d = deepscope.diff(a, tmp_path / "b.safetensors")
    assert d.added == ["new.bias"] and d.removed == ["gone.bias"] and d.reshaped == ["r.weight"]
    assert d.changed == ["gone.bias", "r.weight", "new.bias"]


@pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")
def test_diff_of_int8_quantized_copy_against_its_float_parent() -> None:
    a = _net()
    scale = 0.01
    quant = {
        n: torch.quantize_per_tensor(p.detach(), scale, 0, torch.qint8) if p.ndim > 1 else p
        for n, p in a.state_dict().items()
    }
    w = deepscope.weights(quant)
    assert w.tensors["3.weight"].dtype == "qint8"
    d = deepscope.diff(a, quant)
    assert d.changed == ["0.weight", "3.weight"]  # the biases stayed float
    for name in d.changed:
        row = d.rows[name]
        assert 0 < row["max_abs"] <= scale / 2 + 1e-7  # dequantized: off by rounding only
        assert row["cosine"] > 0.99


def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path: Path) -> None:
    tensors = _tensors()
    proto = _onnx_model(tensors)
    (tmp_path / "secret.bin").write_bytes(b"\0" * (300 * 300 * 4))
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    onnx.save_model(
        proto,
        str(model_dir / "m.onnx"),
        save_as_external_data=True,
        location="w.bin",
        size_threshold=1024,
    )
    loaded = onnx.load(str(model_dir / "m.onnx"), load_external_data=False)
    for t in loaded.graph.initializer:
        for e in t.external_data:
            if e.key == "location":
                e.value = "../secret.bin"
    onnx.save_model(loaded, str(model_dir / "evil.onnx"))
    with pytest.raises(UnsafeModelError, match="inside the model's folder"):
        deepscope.weights(model_dir / "evil.onnx")
    with pytest.raises(UnsafeModelError, match="inside the model's folder"):
        deepscope.diff(model_dir / "m.onnx", model_dir / "evil.onnx")
