"""Integrated gradients: completeness, convergence, batching of steps, baselines."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepscope.analysis.attribution import IntegratedGradients, Saliency, smooth
from deepscope.analysis.attribution.integrated_gradients import approximation


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1), nn.Softplus(), nn.Flatten(), nn.Linear(6 * 36, 3)
    ).eval()


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_middle"])
def test_attributions_sum_to_the_output_difference(net: nn.Module, method: str) -> None:
    x = torch.rand(3, 2, 6, 6)
    baseline = torch.full_like(x, 0.25)
    r = IntegratedGradients(net, baselines=baseline, n_steps=64, method=method).attribute(x, 2)
    with torch.no_grad():
        gap = net(x)[:, 2] - net(baseline)[:, 2]
    total = r.attributions.reshape(3, -1).sum(1)
    assert r.delta is not None
    assert torch.allclose(total - gap, r.delta, atol=1e-5)
    assert r.delta.abs().max() < 1e-3 * gap.abs().max() + 1e-4


def test_delta_shrinks_with_more_steps(net: nn.Module) -> None:
    x = torch.rand(2, 2, 6, 6) * 3
    coarse = IntegratedGradients(net, n_steps=4, method="riemann_left").attribute(x, 0).delta
    fine = IntegratedGradients(net, n_steps=128, method="riemann_left").attribute(x, 0).delta
    assert coarse is not None and fine is not None
    assert fine.abs().max() < coarse.abs().max() / 4


def test_internal_batching_gives_the_same_answer(net: nn.Module) -> None:
    x = torch.rand(3, 2, 6, 6)
    whole = IntegratedGradients(net, n_steps=20).attribute(x, [0, 1, 2]).attributions
    parts = IntegratedGradients(net, n_steps=20, internal_batch_size=7).attribute(x, [0, 1, 2])
    assert torch.allclose(whole, parts.attributions, atol=1e-6)


def test_quadrature_weights_integrate_polynomials_exactly() -> None:
    alphas, weights = approximation("gausslegendre", 5)
    assert sum(w * a**4 for a, w in zip(alphas, weights, strict=True)) == pytest.approx(0.2)
    with pytest.raises(ValueError):
        approximation("simpson", 5)


def test_smoothgrad_averages_noisy_copies(net: nn.Module) -> None:
    x = torch.rand(2, 2, 6, 6)
    plain = Saliency(net).attribute(x, 1).attributions
    no_noise = smooth(Saliency(net), n=3, sigma=0.0).attribute(x, 1).attributions
    assert torch.allclose(plain, no_noise, atol=1e-6)
    a = smooth(Saliency(net), n=8, sigma=0.2, seed=3).attribute(x, 1).attributions
    b = smooth(Saliency(net), n=8, sigma=0.2, seed=3, batch_size=3).attribute(x, 1).attributions
    assert torch.allclose(a, b, atol=1e-5)  # chunking does not change the noise drawn
    assert not torch.allclose(a, plain, atol=1e-4)
