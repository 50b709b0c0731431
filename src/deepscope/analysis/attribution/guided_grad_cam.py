"""Guided Grad-CAM (Selvaraju et al., 2017): guided backpropagation times the Grad-CAM map
upsampled to the input (captum `GuidedGradCam`: nearest-neighbour upsampling by default).

The result is input-shaped like guided backprop ((B, C, H, W), channels-last for Keras
images, (B, T) for token ids); `layer_map` holds Grad-CAM's layer-sized map.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 2))
    >>> r = GuidedGradCAM(net, layer="1").attribute(torch.rand(2, 3, 8, 8), target=0)
    >>> r.attributions.shape
    torch.Size([2, 3, 8, 8])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepscope.analysis.attribution.base import Attribution, Target, resolve_target
from deepscope.analysis.attribution.grad_cam import GradCAM
from deepscope.analysis.attribution.guided_backprop import GuidedBackprop
from deepscope.analysis.attribution.layer_search import is_token_ids
from deepscope.analysis.attribution.outputs import OutputSelector
from deepscope.analysis.attribution.result import AttributionResult


class GuidedGradCAM(Attribution):
    """guided backprop ⊙ upsample(Grad-CAM) on `layer` (module, name, or None for the CAM
    family's automatic choice); `upsample` is "nearest" (captum) or "bilinear"."""

    name = "guided_grad_cam"

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str | None = None,
        upsample: str = "nearest",
        *,
        output: OutputSelector = None,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__(model, output)
        if upsample not in ("nearest", "bilinear"):
            raise ValueError(f"upsample must be 'nearest' or 'bilinear', not {upsample!r}")
        self.upsample = upsample
        self.cam = GradCAM(model, layer, output=output, channels_last=channels_last)
        self.guided = GuidedBackprop(model, output=output)

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        with torch.no_grad():
            target = resolve_target(self.forward(inputs), target)
        cam = self.cam.attribute(inputs, target)
        guided = self.guided.attribute(inputs, target)
        assert cam.layer_map is not None
        grid = cam.layer_map.clamp_min(0)
        tokens = is_token_ids(inputs)
        if tokens:
            grid = grid[:, None, :]  # (B, 1, T)
        size = self.cam.spatial_size(inputs)
        mode = self.upsample
        kwargs = {} if mode == "nearest" else {"align_corners": False}
        up = F.interpolate(grid[:, None], size=size, mode=mode, **kwargs)[:, 0]  # (B, H, W)
        a = guided.attributions
        if tokens:
            weighted = a * up[:, 0]
        elif a.ndim == 4 and self.cam.is_channels_last():
            weighted = a * up[:, :, :, None]
        elif a.ndim == 4:
            weighted = a * up[:, None]
        else:
            raise ValueError(
                f"guided_grad_cam needs images (B, C, H, W) or token ids, got {tuple(a.shape)}"
            )
        meta = dict(guided.meta)
        meta.update(cam.meta)
        return AttributionResult(
            attributions=weighted.detach(),
            method=self.name,
            target=cam.target,
            layer=cam.layer,
            inputs=inputs.detach(),
            layer_map=cam.layer_map,
            meta=meta,
        )


__all__ = ["GuidedGradCAM"]
