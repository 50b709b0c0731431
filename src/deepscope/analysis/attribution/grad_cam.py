"""Grad-CAM (Selvaraju et al., 2017): channels weighted by their spatially averaged gradient.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 2))
    >>> GradCAM(net, layer="1").attribute(torch.rand(2, 3, 8, 8), target=0).attributions.shape
    torch.Size([2, 8, 8])
"""

from __future__ import annotations

import torch

from deepscope.analysis.attribution.base import Target
from deepscope.analysis.attribution.cam_base import CAMBase


class GradCAM(CAMBase):
    """weights_c = mean over positions of ∂score/∂A_c."""

    name = "grad_cam"

    def weights(
        self,
        inputs: torch.Tensor,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        target: Target,
    ) -> torch.Tensor:
        assert grads is not None
        return grads.mean(dim=(2, 3))
