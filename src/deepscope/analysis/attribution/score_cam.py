"""Score-CAM (Wang et al., 2020): channels weighted by the score of the input masked by them.

Each channel's activation, upsampled to the input and min-max scaled, masks the input; the
softmax over channels of the masked inputs' target scores gives the weights. Gradient-free;
costs one forward per channel, run `batch_size` masked inputs at a time.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.Flatten(), torch.nn.Linear(144, 2))
    >>> ScoreCAM(net, "1").attribute(torch.rand(1, 3, 8, 8), 0).attributions.shape
    torch.Size([1, 8, 8])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deepscope.analysis.attribution.base import Target, target_scores
from deepscope.analysis.attribution.cam_base import CAMBase, Reshape
from deepscope.analysis.attribution.layer_search import is_token_ids
from deepscope.analysis.attribution.outputs import OutputSelector
from deepscope.analysis.attribution.result import AttributionResult


class ScoreCAM(CAMBase):
    """weights = softmax_c(score(input ⊙ normalised upsampled A_c))."""

    name = "score_cam"
    uses_gradients = False
    supports_tokens = False

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str | None = None,
        reshape: Reshape = None,
        batch_size: int = 64,
        *,
        output: OutputSelector = None,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__(model, layer, reshape, output=output, channels_last=channels_last)
        self.batch_size = batch_size

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        if inputs.ndim != 4 and not is_token_ids(inputs):
            raise ValueError(
                f"score_cam masks an image input (B, C, H, W) with upsampled activation maps; "
                f"this {tuple(inputs.shape)} input (audio, a sequence) cannot be masked that way. "
                "Use saliency, integrated_gradients, smoothgrad, gradient_x_input or occlusion "
                "(a window with one size per input dim)"
            )
        return super().attribute(inputs, target)

    def weights(
        self,
        inputs: torch.Tensor,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        target: Target,
    ) -> torch.Tensor:
        batch, channels = activations.shape[:2]
        size = self.spatial_size(inputs)
        up = F.interpolate(activations, size=size, mode="bilinear", align_corners=True)
        flat = up.reshape(batch, channels, -1)
        lo = flat.min(dim=2).values[..., None, None]
        hi = flat.max(dim=2).values[..., None, None]
        masks = (up - lo) / (hi - lo + 1e-8)
        scores = torch.empty(batch * channels, device=inputs.device)
        for start in range(0, batch * channels, self.batch_size):
            index = torch.arange(start, min(start + self.batch_size, batch * channels))
            rows = (index // channels).to(inputs.device)
            cols = (index % channels).to(inputs.device)
            mask = masks[rows, cols]
            mask = mask[..., None] if self.is_channels_last() else mask[:, None]
            output = self.forward(inputs[rows] * mask)
            scores[start : start + len(index)] = target_scores(output, target, rows).float()
        return torch.softmax(scores.reshape(batch, channels), dim=1).to(activations.dtype)
