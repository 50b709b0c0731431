"""Gradient × input (Shrikumar et al., 2016); with `layer`, gradient × layer activation.

Example:
    >>> import torch
    >>> net = torch.nn.Linear(4, 2)
    >>> r = GradientXInput(net).attribute(torch.ones(1, 4), target=0)
    >>> torch.allclose(r.attributions, net.weight[0:1].detach())
    True
"""

from __future__ import annotations

import torch

from deepscope.analysis.attribution.base import GradientAttribution, Target
from deepscope.analysis.attribution.result import AttributionResult


class GradientXInput(GradientAttribution):
    """∂ score / ∂ x ⊙ x (captum `InputXGradient`, `LayerGradientXActivation` with a layer)."""

    name = "gradient_x_input"

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        grad, value, _ = self.gradients(inputs, target)
        return self.result(grad * value, inputs, target)
