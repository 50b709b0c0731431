"""Layer-CAM (Jiang et al., 2021): activations weighted by their positive gradient, per position.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Flatten(), torch.nn.Linear(144, 2))
    >>> LayerCAM(net, "1").attribute(torch.rand(1, 3, 8, 8), 0).attributions.shape
    torch.Size([1, 8, 8])
"""

from __future__ import annotations

import torch

from deepscope.analysis.attribution.base import Target
from deepscope.analysis.attribution.cam_base import CAMBase


class LayerCAM(CAMBase):
    """cam = Σ_c relu(∂score/∂A_c) ⊙ A_c; works on shallow layers too."""

    name = "layer_cam"

    def cam(
        self,
        inputs: torch.Tensor,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        target: Target,
    ) -> torch.Tensor:
        assert grads is not None
        return (grads.clamp_min(0) * activations).sum(dim=1)
