"""deepscope.summary against torchinfo on the zoo."""

from __future__ import annotations

import pytest
from torchinfo import summary as torchinfo_summary
from zoo import ZOO

import deepscope
from deepscope.graph.ir import Graph
from deepscope.sources.base import Model, WeightInfo
from deepscope.sources.summary import summary


@pytest.mark.parametrize("name", sorted(ZOO))
def test_param_totals_equal_torchinfo(name: str) -> None:
    model, x = ZOO[name]()
    ours = summary(model, x)
    data = list(x) if isinstance(x, tuple) else x
    theirs = torchinfo_summary(model, input_data=data, verbose=0)
    # torchinfo counts a tied weight once per module using it; deepscope counts it once
    tied = 8 * 8 if name == "two_inputs" else 0
    assert ours.total_params == theirs.total_params - tied
    assert ours.trainable_params == theirs.trainable_params


@pytest.mark.parametrize("name", ["mlp"])
def test_macs_equal_torchinfo_on_linear_models(name: str) -> None:
    model, x = ZOO[name]()
    data = list(x) if isinstance(x, tuple) else x
    assert (
        summary(model, x).total_macs
        == torchinfo_summary(model, input_data=data, verbose=0).total_mult_adds
    )


def test_table_lists_modules_to_depth_with_shapes_and_totals() -> None:
    model, x = ZOO["resnet"]()
    s = deepscope.summary(model, x, depth=1)
    text = str(s)
    assert [r.namespace for r in s.rows] == ["", "stem", "layer1", "shared", "pool", "fc"]
    assert "layer1 (Sequential)" in text and "[2, 8, 8, 8]" in text and "[2, 5]" in text
    assert "Total params: 3,821" in text and "Non-trainable params: 0" in text
    assert f"{s.total_macs:,}" in text
    deeper = summary(model, x, depth=2)
    assert "layer1/0" in [r.namespace for r in deeper.rows]


def test_frozen_layers_show_as_not_trainable() -> None:
    model, x = ZOO["two_inputs"]()
    s = summary(model, x)
    row = {r.namespace: r for r in s.rows}["frozen"]
    assert row.trainable == "False" and s.non_trainable_params == 72


def test_weights_only_model_gives_params_per_module() -> None:
    w = {
        "enc.fc.weight": WeightInfo("enc.fc.weight", (4, 3), "float32"),
        "head.bias": WeightInfo("head.bias", (2,), "float32"),
    }
    s = summary(Model(graph=Graph(), weights=w, format="safetensors"))
    rows = {r.namespace: r.params for r in s.rows}
    assert rows[""] == 14 and rows["enc"] == 12 and rows["enc/fc"] == 12 and rows["head"] == 2
