"""Keras files built by keras itself: parameter totals, shapes and MACs match keras / torch.

Models are small versions built by keras.applications' own code (weights=None), plus two
hand-made models that between them use every other layer class keras.applications uses
and the common recurrent/attention layers. Each is built and saved once per session
(.keras and legacy .h5). Measured on the shared 2-core machine: importing keras ~15-30 s,
building and saving all five ~15 s, loading the ten files ~20 s.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepscope.sources import keras_file
from deepscope.sources._keras_layers import RULES
from deepscope.sources.summary import summary_from_graph

pytest.importorskip("h5py")
os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

#: Every layer class in keras.applications 3.15 (all 40 models built with weights=None and
#: their layer classes listed; NASNet read from source: it does not build on torch).
APPLICATION_LAYERS = {
    "Activation", "Add", "AveragePooling2D", "BatchNormalization", "Concatenate", "Conv2D",
    "Cropping2D", "CustomScaleLayer", "Dense", "DepthwiseConv2D", "Dropout", "Flatten",
    "GlobalAveragePooling2D", "InputLayer", "LayerNormalization", "LayerScale",
    "MaxPooling2D", "Multiply", "Normalization", "ReLU", "Rescaling", "Reshape",
    "SeparableConv2D", "Sequential", "ZeroPadding2D",
}  # fmt: skip


def _mobilenet_v2() -> Any:
    return keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(32, 32, 3), weights=None, classes=10
    )


def _convnext() -> Any:
    from keras.src.applications.convnext import ConvNeXt

    return ConvNeXt(
        depths=[1, 1, 1, 1], projection_dims=[8, 16, 24, 32], default_size=32,
        name="convnext_small_test", weights=None, input_shape=(32, 32, 3), classes=10,
    )  # fmt: skip


def _efficientnet() -> Any:
    from keras.src.applications.efficientnet import EfficientNet

    return EfficientNet(
        0.25, 0.1, 32, name="efficientnet_test", weights=None, input_shape=(32, 32, 3), classes=10
    )


def _other_application_layers() -> Any:
    """NASNet's Cropping2D and SeparableConv2D, Inception-ResNet's CustomScaleLayer, ..."""
    from keras import layers
    from keras.src.applications.inception_resnet_v2 import CustomScaleLayer

    inp = keras.Input((18, 18, 3))
    x = layers.ZeroPadding2D(((1, 0), (0, 1)))(inp)
    x = layers.Cropping2D(((2, 0), (0, 2)))(x)
    x = layers.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = layers.BatchNormalization(center=False)(x)
    x = layers.ReLU(6.0)(x)
    a = layers.SeparableConv2D(8, 3, padding="same", depth_multiplier=2)(x)
    b = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = CustomScaleLayer(0.17)([a, b])
    p = layers.MaxPooling2D(2)(x)
    q = layers.AveragePooling2D(3, strides=2, padding="same")(x)
    x = layers.Concatenate()([p, q])
    x = layers.Conv2D(12, 1, groups=4, activation="relu")(x)
    frozen = layers.Dense(6, trainable=False)
    y = layers.GlobalAveragePooling2D(keepdims=True)(x)
    y = layers.Flatten()(y)
    return keras.Model(inp, layers.Dense(3)(frozen(y)), name="other_layers")


def _sequence_layers() -> Any:
    """Recurrent, attention and 1-D/transposed layers outside keras.applications."""
    from keras import layers

    tokens = keras.Input((12,), dtype="int32")
    x = layers.Embedding(50, 8)(tokens)
    x = layers.LSTM(6, return_sequences=True)(x)
    x = layers.GRU(5, return_sequences=True)(x)
    x = layers.Bidirectional(layers.SimpleRNN(4, return_sequences=True))(x)
    x = layers.MultiHeadAttention(num_heads=2, key_dim=3)(x, x)
    x = layers.Conv1D(6, 3, dilation_rate=2)(x)
    x = layers.GroupNormalization(groups=2)(x)
    x = layers.PReLU(shared_axes=[1])(x)
    x = layers.GlobalMaxPooling1D()(x)
    x = layers.RepeatVector(4)(x)
    x = layers.Permute((2, 1))(x)
    x = layers.Reshape((6, 4, 1))(x)
    x = layers.Conv2DTranspose(3, 3, strides=2)(x)
    x = layers.UpSampling2D(2)(x)
    x = layers.Flatten()(x)
    return keras.Model(tokens, layers.Dense(2)(x), name="sequence_layers")


def _sequential() -> Any:
    """A top-level Sequential: its weights file skips the InputLayer when numbering."""
    from keras import layers

    return keras.Sequential(
        [
            keras.Input((9, 9, 2)),
            layers.Conv2D(4, 3, strides=2, padding="same"),
            layers.BatchNormalization(),
            layers.Conv2D(4, 1),
            layers.Flatten(),
            layers.Dense(3),
        ],
        name="plain_sequential",
    )


BUILDERS: dict[str, Callable[[], Any]] = {
    "sequential": _sequential,
    "mobilenet_v2": _mobilenet_v2,
    "convnext": _convnext,
    "efficientnet": _efficientnet,
    "other_layers": _other_application_layers,
    "sequence_layers": _sequence_layers,
}


@pytest.fixture(scope="session")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    """name -> (keras model, folder holding name.keras and name.h5), built once."""
    folder = tmp_path_factory.mktemp("keras_apps")
    out = {}
    for name, build in BUILDERS.items():
        model = build()
        model.save(folder / f"{name}.keras")
        model.save(folder / f"{name}.h5")
        out[name] = (model, folder)
    return out


def _leaf_layers(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += _leaf_layers(layer, f"{prefix}{layer.name}/")
        else:
            found.append((f"{prefix}{layer.name}", layer))
    return found


def test_rules_cover_every_keras_applications_layer() -> None:
    assert APPLICATION_LAYERS - {"Sequential"} <= set(RULES)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
@pytest.mark.parametrize("name", list(BUILDERS))
def test_params_and_shapes_match_keras(
    saved_models: dict[str, tuple[Any, Path]], name: str, suffix: str
) -> None:
    model, folder = saved_models[name]
    loaded = keras_file.load(folder / f"{name}{suffix}")
    assert not [n for n in loaded.notes if "weights not read" in n]
    s = summary_from_graph(loaded.graph)
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    assert (s.total_params, s.trainable_params) == (model.count_params(), trainable)
    for node_id, layer in _leaf_layers(model):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        assert loaded.graph.node(node_id).outputs[0].shape == tuple(layer.output.shape), node_id
    assert s.total_macs > 0


def test_config_alone_gives_the_same_counts(saved_models: dict[str, tuple[Any, Path]]) -> None:
    """Without a weights file the counts come from shape inference, and still match."""
    import json
    import zipfile

    from deepscope.sources._keras_config import KerasConfigParser

    for name, (model, folder) in saved_models.items():
        with zipfile.ZipFile(folder / f"{name}.keras") as z:
            config = json.loads(z.read("config.json"))
        s = summary_from_graph(KerasConfigParser().parse(config))
        assert s.total_params == model.count_params(), name


def test_the_models_use_every_keras_applications_layer(
    saved_models: dict[str, tuple[Any, Path]],
) -> None:
    used = {
        type(layer).__name__
        for model, _ in saved_models.values()
        for layer in [
            *model.layers,
            *(sub for m in model.layers if isinstance(m, keras.Model) for sub in m.layers),
        ]
    }
    assert APPLICATION_LAYERS <= used
