"""Live Keras 3 models (torch backend: layers are torch modules, images channels-last) in
every attribution method, checked against Grad-CAM and saliency computed by hand."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("Keras runs another backend in this process", allow_module_level=True)

from deepscope.analysis.attribution import METHODS, Saliency, attribute, smooth  # noqa: E402

CAMS = ["grad_cam", "grad_cam_plus_plus", "hires_cam", "score_cam", "layer_cam", "eigen_cam"]


@pytest.fixture(scope="module")
def cnn() -> Any:
    """A channels-last CNN, trained a few steps (bright-left vs bright-right images)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, name="head"),
        ]
    )
    g = np.random.default_rng(0)
    x = g.random((64, 32, 32, 3), dtype=np.float32) * 0.5
    y = g.integers(0, 2, 64)
    for i, label in enumerate(y):
        x[i, :, 16 * label : 16 * label + 16] += 0.5
    model.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    return model


def _images(seed: int) -> torch.Tensor:
    return torch.rand(2, 32, 32, 3, generator=torch.Generator().manual_seed(seed))


def _manual_grad_cam(model: Any, layer: Any, x: torch.Tensor, target: int) -> torch.Tensor:
    kept: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        score = model(x)[:, target].sum()
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(score, kept[0])  # (B, h, w, C): channels-last
    weights = grad.mean(dim=(1, 2), keepdim=True)
    cam = (weights * kept[0]).sum(dim=-1).clamp_min(0).detach()
    return F.interpolate(cam[:, None], size=(32, 32), mode="bilinear", align_corners=False)[:, 0]


@pytest.mark.parametrize("method", CAMS)
def test_cams_find_the_last_conv_and_match_the_input_size(cnn: Any, method: str) -> None:
    result = attribute(cnn, _images(0), 1, method=method)
    assert result.layer == "c2"
    assert result.attributions.shape == (2, 32, 32)
    assert result.layer_map is not None and result.layer_map.shape == (2, 16, 16)
    assert np.isfinite(result.raw).all() and result.raw.std() > 0


def test_grad_cam_matches_a_manual_channels_last_grad_cam(cnn: Any) -> None:
    x = _images(1)
    for target in (0, 1):
        ours = attribute(cnn, x, target, method="grad_cam")
        manual = _manual_grad_cam(cnn, cnn.get_layer("c2"), x, target)
        assert torch.allclose(ours.attributions, manual, atol=1e-6)
    by_object = attribute(cnn, x, 1, method="layer_cam", layer=cnn.get_layer("c1"))
    assert by_object.layer == "c1" and by_object.attributions.shape == (2, 32, 32)


@pytest.mark.parametrize("method", ["saliency", "gradient_x_input", "integrated_gradients"])
def test_gradient_methods_on_channels_last_inputs(cnn: Any, method: str) -> None:
    x = _images(3)
    options = {"n_steps": 16} if method == "integrated_gradients" else {}
    result = attribute(cnn, x, 1, method=method, **options)
    assert result.attributions.shape == x.shape and result.meta["layout"] == "channels_last"
    assert result.heat().shape == (2, 32, 32)  # channels summed over the last dim
    if method == "saliency":
        leaf = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(cnn(leaf)[:, 1].sum(), leaf)
        assert torch.allclose(result.attributions, grad.abs())
    if method == "integrated_gradients":
        assert result.delta is not None and result.delta.abs().max() < 1e-3


def test_occlusion_covers_height_and_width_with_all_channels(cnn: Any) -> None:
    x = _images(4)
    result = attribute(cnn, x, 1, method="occlusion", window=(16, 16), strides=16)
    assert result.attributions.shape == x.shape
    a = result.attributions
    with torch.no_grad():
        occluded = x.clone()
        occluded[:, :16, 16:] = 0  # the top-right window, every channel
        drop = cnn(x)[:, 1] - cnn(occluded)[:, 1]
    assert torch.allclose(a[:, 0, 16], drop[:, None].expand(2, 3), atol=1e-6)
    assert torch.allclose(a[:, 0, 16, 0], a[:, 15, 31, 2])  # one value over the window


def test_every_method_runs_and_smoothgrad_too(cnn: Any) -> None:
    x = _images(5)[:1]
    for method in METHODS:
        options: dict[str, Any] = {"n_steps": 4} if method == "integrated_gradients" else {}
        result = attribute(cnn, x, 0, method=method, **options)
        assert np.isfinite(result.raw).all(), method
    result = smooth(Saliency(cnn), n=2, seed=0).attribute(x, 0)
    assert result.attributions.shape == x.shape and result.meta["layout"] == "channels_last"


def test_keras_text_model_attributes_tokens() -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((10,), dtype="int32"),
            keras.layers.Embedding(30, 8, name="emb"),
            keras.layers.Conv1D(8, 3, padding="same", activation="relu", name="conv"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(2),
        ]
    )
    ids = torch.randint(1, 30, (2, 10), generator=torch.Generator().manual_seed(0))
    saliency = attribute(model, ids, 1, method="saliency")
    assert saliency.layer == "emb" and saliency.attributions.shape == (2, 10)
    cam = attribute(model, ids, 1, method="grad_cam")
    assert cam.layer == "conv" and cam.attributions.shape == (2, 10)
    occlusion = attribute(model, ids, 1, method="occlusion")
    assert occlusion.attributions.shape == (2, 10)


def test_nested_keras_layers_are_named_by_path() -> None:
    keras.utils.set_random_seed(0)
    block = keras.Sequential(
        [keras.layers.Conv2D(4, 3, padding="same", name="conv"), keras.layers.ReLU(name="relu")],
        name="block",
    )
    inputs = keras.Input((16, 16, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(block(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    x = torch.rand(1, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    # the nested block finishes last, as a torch nn.Sequential container would
    assert attribute(model, x, 0, method="grad_cam").layer == "block"
    result = attribute(model, x, 0, method="layer_cam", layer="block/conv")
    assert result.layer == "block/conv" and result.attributions.shape == (1, 16, 16)
    with pytest.raises(ValueError, match="no layer named 'conv'"):
        attribute(model, x, 0, method="grad_cam", layer="conv")
