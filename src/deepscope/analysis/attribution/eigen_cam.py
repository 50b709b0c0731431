"""Eigen-CAM (Muhammad & Yeasin, 2020): the first principal component of the activations.

Gradient-free and class-agnostic (the target is ignored). The SVD's sign is arbitrary; it
is fixed so that the map correlates positively with the channel-summed activation.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Flatten(), torch.nn.Linear(144, 2))
    >>> EigenCAM(net, "1").attribute(torch.rand(1, 3, 8, 8)).attributions.shape
    torch.Size([1, 8, 8])
"""

from __future__ import annotations

import torch

from deepscope.analysis.attribution.base import Target
from deepscope.analysis.attribution.cam_base import CAMBase


class EigenCAM(CAMBase):
    """cam = projection of the position-centred activations on their first right singular vector."""

    name = "eigen_cam"
    uses_gradients = False

    def cam(
        self,
        inputs: torch.Tensor,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        target: Target,
    ) -> torch.Tensor:
        batch, channels, h, w = activations.shape
        x = activations.float().reshape(batch, channels, h * w).transpose(1, 2)
        x = torch.nan_to_num(x - x.mean(dim=1, keepdim=True))
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        projection = (x @ vh[:, 0, :, None])[..., 0]
        reference = x.sum(dim=2)
        sign = torch.sign((projection * reference).sum(dim=1, keepdim=True))
        projection = projection * torch.where(sign == 0, torch.ones_like(sign), sign)
        result: torch.Tensor = projection.reshape(batch, h, w).to(activations.dtype)
        return result
