"""Keras files: relative paths reach the sandboxed reader; MACs from config and shapes."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from deepscope.cli import main
from deepscope.sources import keras_file
from deepscope.sources.summary import summary_from_graph

h5py = pytest.importorskip("h5py")


def _layer(cls: str, name: str, **cfg: Any) -> dict[str, Any]:
    return {"class_name": cls, "name": name, "config": {"name": name, **cfg}}


CNN = {
    "class_name": "Sequential",
    "config": {
        "name": "cnn",
        "layers": [
            _layer("InputLayer", "input", batch_shape=[None, 16, 16, 3]),
            _layer("Conv2D", "conv", filters=8, kernel_size=[3, 3], padding="same"),
            _layer("BatchNormalization", "bn"),
            _layer("ReLU", "relu"),
            _layer("MaxPooling2D", "pool", pool_size=[2, 2]),
            _layer("DepthwiseConv2D", "dw", kernel_size=[3, 3], padding="same"),
            _layer("Conv2D", "pw", filters=16, kernel_size=[1, 1]),
            _layer("GlobalAveragePooling2D", "gap"),
            _layer("Dense", "fc", units=10),
        ],
    },
}
CNN_PARAMS = (27 * 8 + 8) + 4 * 8 + (9 * 8 + 8) + (8 * 16 + 16) + (16 * 10 + 10)
# per layer: output elements x (MACs per element), bias one MAC per output element
CNN_MACS = (
    16 * 16 * 8 * (27 + 1)  # conv 3x3x3
    + 16 * 16 * 8 * 2  # batch norm (scale and shift)
    + 8 * 8 * 8 * 4  # 2x2 max pool window reads
    + 8 * 8 * 8 * (9 + 1)  # depthwise 3x3
    + 8 * 8 * 16 * (8 + 1)  # pointwise 1x1
    + 8 * 8 * 16  # global average pool reads every input
    + 10 * (16 + 1)  # dense
)


# layer -> (its path in a .keras weights file, [(legacy .h5 weight name, shape)])
WEIGHTS: dict[str, tuple[str, list[tuple[str, tuple[int, ...]]]]] = {
    "conv": ("conv2d", [("kernel", (3, 3, 3, 8)), ("bias", (8,))]),
    "bn": (
        "batch_normalization",
        [(w, (8,)) for w in ("gamma", "beta", "moving_mean", "moving_variance")],
    ),
    "dw": ("depthwise_conv2d", [("depthwise_kernel", (3, 3, 8, 1)), ("bias", (8,))]),
    "pw": ("conv2d_1", [("kernel", (1, 1, 8, 16)), ("bias", (16,))]),
    "fc": ("dense", [("kernel", (16, 10)), ("bias", (10,))]),
}


def _weights(h5: Any, legacy: bool) -> None:
    """Weights laid out as keras writes them (.keras: layers/<class>[_n]/vars/<i>)."""
    for layer, (storage, arrays) in WEIGHTS.items():
        for i, (name, shape) in enumerate(arrays):
            key = (
                f"model_weights/{layer}/{layer}/{name}" if legacy else f"layers/{storage}/vars/{i}"
            )
            h5.create_dataset(key, data=np.ones(shape, np.float32))


def _write_h5(path: Path) -> Path:
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(CNN)
        _weights(h5, legacy=True)
    return path


def _write_keras(path: Path) -> Path:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        _weights(h5, legacy=False)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(CNN))
        z.writestr("model.weights.h5", buf.getvalue())
    return path


def test_cli_summary_of_a_relative_h5_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_h5(tmp_path / "rel.h5")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["summary", "rel.h5"])
    assert result.exit_code == 0, result.output
    assert f"Total params: {CNN_PARAMS:,}" in result.output
    assert f"Total mult-adds (MACs): {CNN_MACS:,}" in result.output


def test_relative_keras_path_reads_its_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    _write_keras(tmp_path / "sub" / "rel.keras")
    monkeypatch.chdir(tmp_path)
    model = keras_file.load(os.path.join("sub", "rel.keras"))
    assert model.notes == []
    assert model.weights["layers/conv2d/vars/0"].shape == (3, 3, 3, 8)
    assert model.graph.node("dw").params[0].name == "layers/depthwise_conv2d/vars/0"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_macs_match_a_hand_computation(tmp_path: Path, suffix: str) -> None:
    path = (_write_keras if suffix == ".keras" else _write_h5)(tmp_path / f"m{suffix}")
    s = summary_from_graph(keras_file.load(path).graph)
    assert s.total_params == CNN_PARAMS
    assert s.total_macs == CNN_MACS


def test_macs_match_the_equivalent_torch_model(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from torch import nn

    import deepscope

    twin = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, groups=8),
        nn.Conv2d(8, 16, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()
    torch_summary = deepscope.summary(twin, torch.zeros(1, 3, 16, 16))
    keras_summary = summary_from_graph(keras_file.load(_write_keras(tmp_path / "m.keras")).graph)
    # keras counts batch-norm moving statistics as (frozen) weights, torch as buffers
    assert torch_summary.total_params == keras_summary.trainable_params
    assert keras_summary.total_macs == pytest.approx(torch_summary.total_macs, rel=0.01)


def _dynamic(tmp_path: Path) -> Path:
    """The CNN above with an `(None, None, 3)` input, like MobileNetV3Small(weights=None)."""
    dyn = json.loads(json.dumps(CNN))
    dyn["config"]["layers"][0]["config"]["batch_shape"] = [None, None, None, 3]
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        _weights(h5, legacy=False)
    path = tmp_path / "dyn.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(dyn))
        z.writestr("model.weights.h5", buf.getvalue())
    return path


def test_unknown_spatial_dims_give_a_partial_macs_note(tmp_path: Path) -> None:
    fixed = keras_file.load(_write_keras(tmp_path / "m.keras")).graph
    assert "macsNote" not in fixed.meta
    graph = keras_file.load(_dynamic(tmp_path)).graph
    s = summary_from_graph(graph)
    assert s.total_params == CNN_PARAMS  # params do not depend on the input size
    # conv, bn, pool, depthwise, pointwise, global pool: their outputs are [None, ?, ?, C]
    assert graph.meta["macsNote"].startswith("partial: 6 layers")
    assert s.total_macs == 10 * (16 + 1)  # only the dense layer after global pooling counts
    assert "MACs note: partial: 6 layers" in str(s)


def test_cli_says_input_shape_is_not_used_for_a_file(tmp_path: Path) -> None:
    path = _dynamic(tmp_path)
    result = CliRunner().invoke(main, ["summary", str(path), "--input-shape", "1,32,32,3"])
    assert result.exit_code == 0, result.output
    assert "--input-shape is not used for a model file" in result.output
    assert "MACs note: partial" in result.output
    plain = CliRunner().invoke(main, ["summary", str(path)])
    assert "--input-shape" not in plain.output
