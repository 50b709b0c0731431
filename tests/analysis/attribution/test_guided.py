"""Guided backprop, deconvnet and guided Grad-CAM against captum's `GuidedBackprop`,
`Deconvolution` and `GuidedGradCam` on the trained patch CNN, and the ReLU override's
clean-up (also after an exception)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from conftest import Trained
from deepscope.analysis.attribution import METHODS, Saliency, attribute
from deepscope.analysis.attribution.guided_backprop import relu_override

captum_attr = pytest.importorskip("captum.attr")


def _pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    x, y = a.detach().double().flatten(), b.detach().double().flatten()
    return float(np.corrcoef(x.numpy(), y.numpy())[0, 1])


def _per_image_r(ours: torch.Tensor, theirs: torch.Tensor) -> list[float]:
    return [_pearson(o, t) for o, t in zip(ours, theirs, strict=True)]


@pytest.mark.parametrize(
    ("method", "reference"),
    [("guided_backprop", "GuidedBackprop"), ("deconvnet", "Deconvolution")],
)
def test_agrees_with_captum(patch_model: Trained, method: str, reference: str) -> None:
    model, x = patch_model.model, patch_model.test.images[:12]
    target = patch_model.test.labels[:12]
    ours = attribute(model, x, target, method=method).attributions
    theirs = getattr(captum_attr, reference)(model).attribute(x.clone(), target=target)
    assert ours.shape == theirs.shape == x.shape
    assert min(_per_image_r(ours, theirs)) >= 0.99
    # and it is not the plain gradient (which captum's method would not match as well)
    plain = Saliency(model, abs=False).attribute(x, target).attributions
    assert not torch.allclose(ours, plain, atol=1e-6)


def test_guided_grad_cam_agrees_with_captum(patch_model: Trained) -> None:
    model, x = patch_model.model, patch_model.test.images[:12]
    target = patch_model.test.labels[:12]
    layer = model.features[5]
    ours = attribute(model, x, target, method="guided_grad_cam", layer="features.5")
    theirs = captum_attr.GuidedGradCam(model, layer).attribute(x.clone(), target=target)
    assert ours.attributions.shape == theirs.shape == x.shape
    assert ours.layer == "features.5"
    rs = [
        r for r, t in zip(_per_image_r(ours.attributions, theirs), theirs, strict=True) if t.any()
    ]
    assert len(rs) >= 8 and min(rs) >= 0.99
    guided = attribute(model, x, target, method="guided_backprop").attributions
    assert _pearson(ours.attributions, guided) < 0.99  # the CAM weighting matters


def test_guided_gradients_are_the_rule_by_hand() -> None:
    """A 1-hidden-layer net: guided = W1ᵀ (relu(W2[t]) ⊙ [h>0]), deconv = W1ᵀ relu(W2[t])."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    x = torch.randn(4, 5)
    w1, w2 = net[0].weight.detach(), net[2].weight.detach()
    hidden = net[0](x).detach()
    upstream = w2[1].expand(4, 7)
    guided = ((upstream * (hidden > 0)).clamp_min(0)) @ w1
    deconv = upstream.clamp_min(0) @ w1
    assert torch.allclose(attribute(net, x, 1, method="guided_backprop").attributions, guided)
    assert torch.allclose(attribute(net, x, 1, method="deconvnet").attributions, deconv)


class _Functional(nn.Module):
    """ReLU in the functional and tensor-method forms (no nn.ReLU module)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(5, 6), nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.relu(self.a(x))
        h = torch.relu(self.b(h)).relu()
        return self.c(h)


def test_functional_relus_are_overridden_like_modules() -> None:
    torch.manual_seed(0)
    fn = _Functional()
    mod = nn.Sequential(fn.a, nn.ReLU(), fn.b, nn.ReLU(inplace=True), nn.ReLU(), fn.c)
    x = torch.randn(3, 5)
    for method in ("guided_backprop", "deconvnet"):
        a = attribute(fn, x, 0, method=method)
        b = attribute(mod, x, 0, method=method)
        assert a.meta["relus"] == 3 and b.meta["relus"] == 3
        assert torch.allclose(a.attributions, b.attributions)


class _Boom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        torch.relu(self.fc(x))
        raise RuntimeError("boom")


def _plain_relu_grad() -> torch.Tensor:
    x = torch.tensor([-1.0, 2.0], requires_grad=True)
    (g,) = torch.autograd.grad((torch.relu(x) * torch.tensor([-3.0, -3.0])).sum(), x)
    return g


def test_override_is_removed_after_an_exception(patch_model: Trained) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        attribute(_Boom(), torch.rand(2, 4), 0, method="guided_backprop")
    with pytest.raises(RuntimeError, match="boom"), relu_override("deconv"):
        raise RuntimeError("boom")
    assert torch.overrides._get_current_function_mode_stack() == []
    # plain autograd again: negative gradients pass the ReLU where its input was positive
    assert torch.equal(_plain_relu_grad(), torch.tensor([0.0, -3.0]))
    model = patch_model.model
    hooks: Any = [(m._forward_hooks, m._backward_hooks) for m in model.modules()]
    assert all(not f and not b for f, b in hooks)
    with pytest.raises(ValueError, match="rule must be"), relu_override("nope"):
        pass


def test_registered_and_on_keras_style_channels_last_layout(patch_model: Trained) -> None:
    assert {"guided_backprop", "deconvnet", "guided_grad_cam"} <= set(METHODS)
    x = patch_model.test.images[:2]
    auto = attribute(patch_model.model, x, 0, method="guided_grad_cam")
    assert auto.layer in ("features", "features.5") and auto.attributions.shape == x.shape
    bilinear = attribute(
        patch_model.model, x, 0, method="guided_grad_cam", layer="features.5", upsample="bilinear"
    )
    assert not torch.allclose(bilinear.attributions, auto.attributions)
