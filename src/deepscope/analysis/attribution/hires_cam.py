"""HiResCAM (Draelos & Carin, 2020): the element-wise product of gradient and activation.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Flatten(), torch.nn.Linear(144, 2))
    >>> HiResCAM(net, "1").attribute(torch.rand(1, 3, 8, 8), 0).attributions.shape
    torch.Size([1, 8, 8])
"""

from __future__ import annotations

import torch

from deepscope.analysis.attribution.base import Target
from deepscope.analysis.attribution.cam_base import CAMBase


class HiResCAM(CAMBase):
    """cam = Σ_c ∂score/∂A_c ⊙ A_c (faithful to the model's computation for linear heads)."""

    name = "hires_cam"

    def cam(
        self,
        inputs: torch.Tensor,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        target: Target,
    ) -> torch.Tensor:
        assert grads is not None
        return (grads * activations).sum(dim=1)
