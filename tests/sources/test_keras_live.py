"""Live Keras 3 models (torch backend, so their layers are torch modules): the graph is
drawn per Keras layer with Keras layer names as namespaces, and `run.watch` logs their
kernels and biases under those names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras was imported with another backend", allow_module_level=True)

import torch  # noqa: E402

import deepscope  # noqa: E402
from deepscope.sources.summary import summary  # noqa: E402
from deepscope.store import open as open_store  # noqa: E402


def _cnn() -> Any:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv2d"),
            keras.layers.MaxPooling2D(name="max_pooling2d"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(10, activation="relu", name="dense"),
            keras.layers.Dense(3, name="dense_1"),
        ]
    )


def _functional() -> Any:
    keras.utils.set_random_seed(0)
    image = keras.Input((6, 6, 2), name="image")
    side = keras.Input((3,), name="side")
    h = keras.layers.Conv2D(2, 3, name="conv")(image)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    h = keras.layers.Concatenate(name="concat")([h, side])
    out = keras.layers.Dense(2, name="head")(h)
    return keras.Model([image, side], out)


LAYERS = ["conv2d", "max_pooling2d", "flatten", "dense", "dense_1"]


def test_sequential_cnn_graph_has_one_node_per_layer_named_by_keras() -> None:
    model, x = _cnn(), torch.randn(2, 8, 8, 1)
    g = deepscope.graph(model, x)
    ops = [n for n in g.nodes if n.op not in ("input", "output")]
    assert [n.namespace for n in ops] == LAYERS
    assert g.meta["trace"] == "hooks" and g.meta["moduleTypes"]["conv2d"] == "Conv2D"
    for layer in model.layers:
        group = g.groups[layer.name]
        assert group.params == layer.count_params()
        assert group.output_shapes == [(2, *layer.output.shape[1:])]
    assert g.groups[""].params == model.count_params() == 443
    assert [p.name for p in ops[0].params] == ["conv2d.kernel", "conv2d.bias"]
    # edges chain the layers, and their shapes agree with the producer
    by_id = {n.id: n for n in g.nodes}
    chain = [(by_id[e.src].namespace, by_id[e.dst].namespace) for e in g.edges]
    assert chain == list(zip(["", *LAYERS], [*LAYERS, ""], strict=True))
    for e in g.edges:
        assert e.tensor == by_id[e.src].outputs[e.src_output]
    # MACs come from the torch ops each layer ran (conv: 2*6*6*4 outputs x 9 taps)
    assert g.groups["conv2d"].macs >= 2 * 6 * 6 * 4 * 9
    assert g.groups["dense"].macs >= 2 * 36 * 10


def test_functional_model_with_two_inputs_keeps_layer_names_and_branches() -> None:
    model = _functional()
    x = [torch.randn(2, 6, 6, 2), torch.randn(2, 3)]
    g = deepscope.graph(model, (x,))  # Keras takes several inputs as one list
    ops = {n.namespace: n for n in g.nodes if n.op not in ("input", "output")}
    assert set(ops) == {"conv", "pool", "concat", "head"}
    assert g.groups[""].params == model.count_params()
    assert [p.name for p in ops["head"].params] == ["head.kernel", "head.bias"]
    by_id = {n.id: n for n in g.nodes}
    into_concat = sorted(
        (by_id[e.src].op, e.tensor.shape) for e in g.edges if e.dst == ops["concat"].id
    )
    assert into_concat == [("globalaveragepooling2d", (2, 2)), ("input", (2, 3))]
    out = [n for n in g.nodes if n.op == "output"][0]
    assert out.outputs[0].shape == tuple(model(x).shape)


def test_summary_rows_are_the_keras_layers() -> None:
    s = summary(_cnn(), torch.zeros(1, 8, 8, 1))
    assert [r.namespace for r in s.rows] == ["", *LAYERS]
    assert "conv2d (Conv2D)" in str(s) and s.total_params == 443


def test_watch_logs_keras_kernels_biases_and_activations(tmp_path: Path) -> None:
    model = _cnn()
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 8, 8, 1)).astype("float32")
    y = rng.normal(size=(16, 3)).astype("float32")
    with deepscope.init(logdir=str(tmp_path), name="k") as run:
        run.watch(model, every=2)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)  # 4 iterations: 0 and 2 logged
        kernel = model.layers[0].kernel.numpy()
    reader = open_store(tmp_path).run("k")
    hists = reader.histograms("weights/conv2d.kernel")
    assert [h.step for h in hists] == [0, 2]
    assert hists[0].count == kernel.size
    for tag in ("weights/dense_1.bias", "grads/conv2d.kernel", "grads/dense.kernel"):
        assert [h.step for h in reader.histograms(tag)] == [0, 2], tag
    assert reader.histograms("grads/dense_1.kernel")[-1].max != 0
    assert [p.step for p in reader.scalars("act/conv2d/mean")] == [0, 2]
    assert [p.step for p in reader.scalars("update_ratio/dense.kernel")] == [0, 2]
