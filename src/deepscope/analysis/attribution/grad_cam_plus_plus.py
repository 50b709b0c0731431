"""Grad-CAM++ (Chattopadhay et al., 2018): positive gradients weighted per position (eq. 19).

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 2))
    >>> GradCAMPlusPlus(net, "1").attribute(torch.rand(1, 3, 8, 8), 1).attributions.shape
    torch.Size([1, 8, 8])
"""

from __future__ import annotations

import torch

from deepscope.analysis.attribution.base import Target
from deepscope.analysis.attribution.cam_base import CAMBase


class GradCAMPlusPlus(CAMBase):
    """weights_c = Σ_ij α_ij · relu(g_ij), α = g² / (2g² + Σ_ij A · g³)."""

    name = "grad_cam_plus_plus"

    def weights(
        self,
        inputs: torch.Tensor,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        target: Target,
    ) -> torch.Tensor:
        assert grads is not None
        g2 = grads.pow(2)
        total = activations.sum(dim=(2, 3), keepdim=True)
        alpha = g2 / (2 * g2 + total * g2 * grads + 1e-6)
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        return (grads.clamp_min(0) * alpha).sum(dim=(2, 3))
