"""Saliency (Simonyan et al., 2013): the absolute gradient of the target score.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    >>> Saliency(net).attribute(torch.rand(2, 3, 2, 2), target=1).attributions.shape
    torch.Size([2, 3, 2, 2])
"""

from __future__ import annotations

import torch
from torch import nn

from deepscope.analysis.attribution.base import GradientAttribution, Target
from deepscope.analysis.attribution.outputs import OutputSelector
from deepscope.analysis.attribution.result import AttributionResult


class Saliency(GradientAttribution):
    """|∂ score / ∂ input| (captum `Saliency`); `abs=False` keeps the sign."""

    name = "saliency"

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str | None = None,
        abs: bool = True,
        *,
        output: OutputSelector = None,
    ) -> None:
        super().__init__(model, layer, output=output)
        self.abs = abs

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        grad, _, _ = self.gradients(inputs, target)
        return self.result(grad.abs() if self.abs else grad, inputs, target)
