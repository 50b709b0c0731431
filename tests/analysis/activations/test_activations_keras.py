"""Live Keras 3 models (torch backend): captures equal hand-written forward hooks on the
Keras layers (torch modules), unit statistics on channels-last images and recurrent states.
Keras is imported once for the module (it costs seconds)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("Keras runs another backend in this process", allow_module_level=True)

from deepscope.analysis.activations import activations, rnn_states, unit_stats  # noqa: E402
from deepscope.capture.select import LayerSelectionError  # noqa: E402


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    keras.utils.set_random_seed(0)
    inp = keras.Input((12, 12, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inp)
    h = keras.layers.MaxPooling2D(name="pool")(h)
    h = keras.layers.Conv2D(6, 3, name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    functional = keras.Model(inp, keras.layers.Dense(3, name="head")(h))
    sequential = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(8, activation="relu", name="d1"),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.Dense(2, name="d2"),
        ]
    )
    rnn = keras.Sequential(
        [
            keras.Input((5, 4)),
            keras.layers.LSTM(6, return_sequences=True, name="lstm"),
            keras.layers.GRU(3, return_sequences=True, name="gru"),
        ]
    )
    return {"functional": functional, "sequential": sequential, "rnn": rnn}


def _by_hand(model: Any, x: Any, layers: list[Any]) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = []
    handles = [
        layer.register_forward_hook(lambda _m, _i, out: seen.append(out.detach().clone()))
        for layer in layers
    ]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def test_functional_cnn_capture_equals_hand_hooks(models: dict[str, Any]) -> None:
    model = models["functional"]
    x = np.random.default_rng(0).random((2, 12, 12, 3), dtype=np.float32)
    acts = activations(model, x)
    assert acts.layers == ["c1", "pool", "c2", "gap", "head"]
    assert acts.meta["layout"] == "channels_last"
    hand = _by_hand(model, torch.from_numpy(x), [model.get_layer(n) for n in acts.layers])
    for name, expected in zip(acts.layers, hand, strict=True):
        assert torch.equal(acts[name], expected.cpu()), name
    picture = acts.feature_maps("c1")
    assert picture.values.shape == (4, 12, 12)  # channels first in the picture
    assert np.array_equal(picture.values[2], acts["c1"][0, :, :, 2].numpy())
    assert all(not layer._forward_hooks for layer in model.layers)


def test_sequential_capture_equals_hand_hooks(models: dict[str, Any]) -> None:
    model = models["sequential"]
    x = torch.randn(3, 10, dtype=torch.float64)  # another dtype: cast to the model's
    acts = activations(model, x, ["d1", "d2"])
    hand = _by_hand(model, x.float(), [model.get_layer("d1"), model.get_layer("d2")])
    assert torch.equal(acts["d1"], hand[0]) and torch.equal(acts["d2"], hand[1])
    with pytest.raises(LayerSelectionError, match="close matches: 'd1'"):
        activations(model, x, "d11")


def test_unit_stats_on_channels_last_images(models: dict[str, Any]) -> None:
    model = models["functional"]
    x = torch.from_numpy(np.random.default_rng(1).random((10, 12, 12, 3), dtype=np.float32))
    stats = unit_stats(model, [x[:4], x[4:]], ["c2"], top_k=3, progress=False)
    whole = activations(model, x, "c2")["c2"]  # (N, H, W, C)
    scores = whole.flatten(1, 2).max(1).values  # (N, C)
    expected = torch.sort(-scores.t(), dim=1, stable=True).indices[:, :3]
    table = stats["c2"]
    assert torch.equal(table.top_indices, expected)
    rf = table.receptive_field
    assert rf is not None and rf["size"] == (8, 8) and rf["stride"] == (2.0, 2.0)
    crop = table.crops[0][0] if table.crops else None
    assert crop is not None and crop.shape[-1] == 3  # channels-last crop


def test_keras_recurrent_states_equal_the_sequences(models: dict[str, Any]) -> None:
    model = models["rnn"]
    x = torch.randn(2, 5, 4)
    seqs = activations(model, x, ["lstm", "gru"])
    lstm = rnn_states(model, x, "lstm", tokens=list("abcde"))
    assert lstm.cell is not None and lstm.hidden.shape == (1, 2, 5, 6)
    torch.testing.assert_close(lstm.hidden[0], seqs["lstm"])
    gru = rnn_states(model, x, "gru")
    assert gru.cell is None
    torch.testing.assert_close(gru.hidden[0], seqs["gru"])
    assert lstm.picture("cell").values.shape == (6, 5)
