"""A live Keras 3 model (torch backend, channels-last) and the top-level `deepscope.visualize`."""

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

import deepscope  # noqa: E402
from deepscope.analysis.featureviz import FeatureViz, channels  # noqa: E402


@pytest.fixture(scope="module")
def cnn() -> Any:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((12, 12, 3)),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c1"),
            keras.layers.Conv2D(6, 3, padding="same", name="c2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, name="head"),
        ]
    )


def test_keras_channels_by_layer_name(cnn: Any) -> None:
    fv = deepscope.visualize(cnn, channels("c2"), steps=16, lr=0.1, progress=False)
    assert isinstance(fv, FeatureViz)
    assert fv.images.shape == (6, 3, 12, 12)  # size and channels from the Keras input shape
    assert fv.settings["channels_last"] is True
    assert (fv.values[-1] > fv.values[0]).all()
    # channel i of the channels-last output is what image i excites most among images
    with torch.no_grad():
        out = cnn.get_layer("c1")(fv.images.permute(0, 2, 3, 1))
        acts = cnn.get_layer("c2")(out).mean(dim=(1, 2))  # (images, channels)
    assert (acts.argmax(dim=0) == torch.arange(6)).float().mean() >= 5 / 6
    logit = deepscope.visualize(cnn, "logits:1", steps=8, lr=0.1, progress=False)
    assert np.isfinite(logit.values).all() and logit.values[-1, 0] > logit.values[0, 0]
