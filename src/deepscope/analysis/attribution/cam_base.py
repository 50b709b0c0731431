"""The CAM family's base: hooks the target layer, one forward and one backward to it, ReLU,
upsampling to the input and per-image min-max scaling (pytorch-grad-cam's `BaseCAM`).

A method overrides `weights` (one weight per channel) or `cam` (the whole layer-sized map).
The backward runs only from the output to the layer (`torch.autograd.grad` on the layer's
output) and autograd records nothing before the layer, so a CAM costs about one forward pass.

Token activations (B, N, C) from ViT-style models are laid out on a grid: N tokens when N is
a square, else the last N − 1 (the CLS token dropped) when that is; `reshape` may instead
give the grid `(h, w)` (the last h·w tokens) or a callable mapping (B, N, C) to (B, C, h, w).
Channels-last models (Keras) give (B, H, W, C) activations and inputs; both are understood.
For token-id inputs (B, T) the map is per token: a (B, T, C) layer is read as a 1 × T grid
and the result is (B, T).

No map comes back all zero in silence: a warning names the layer to pass instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

from deepscope.analysis.attribution.base import (
    Attribution,
    Target,
    resolve_target,
    target_label,
    target_scores,
)
from deepscope.analysis.attribution.layer_search import (
    _grid_side,
    _is_norm,
    cam_layers,
    channels_last,
    find_cam_layer,
    is_token_ids,
    token_positions,
)
from deepscope.analysis.attribution.outputs import AttributionWarning, OutputSelector
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import find_module, forward_from_layer

Reshape = Union[None, tuple[int, int], Callable[[torch.Tensor], torch.Tensor]]  # noqa: UP007


def to_grid(
    activation: torch.Tensor, reshape: Reshape = None, channels_last: bool = False
) -> torch.Tensor:
    """(B, C, h, w) from a conv activation ((B, h, w, C) when `channels_last`) or a
    (B, N, C) token activation."""
    if callable(reshape):
        return reshape(activation)
    if activation.ndim == 4:
        return activation.permute(0, 3, 1, 2) if channels_last else activation
    if activation.ndim != 3:
        raise ValueError(
            f"CAMs need (B, C, H, W) or (B, N, C) activations, got {activation.ndim}-D"
        )
    batch, n, channels = activation.shape
    if reshape is None:
        side = _grid_side(n)
        h = w = side if side is not None else (_grid_side(n - 1) or 0)
        if not h:
            raise ValueError(f"{n} tokens are not a square grid; pass reshape=(h, w)")
    else:
        h, w = reshape
    return activation[:, n - h * w :].reshape(batch, h, w, channels).permute(0, 3, 1, 2)


def to_sequence(
    activation: torch.Tensor, length: int, reshape: Reshape = None, channels_last: bool = False
) -> torch.Tensor:
    """(B, C, 1, T) from a (B, T, C) or (B, C, T) activation of a model fed `length` token ids."""
    if callable(reshape):
        return reshape(activation)
    axis = token_positions(tuple(activation.shape), length, channels_last)
    if axis is None:
        raise ValueError(
            f"a {tuple(activation.shape)} activation has no axis over the {length} token "
            "positions; pick a (B, T, C) layer or pass reshape= a callable giving (B, C, 1, T)"
        )
    seq = activation.transpose(1, 2) if axis == 1 else activation
    return seq[:, :, None, :]


class CAMBase(Attribution):
    """Class activation maps on one layer (`layer`: module, name, or None for auto).

    `channels_last` says how 4-D activations and images are laid out (None: Keras models'
    `data_format`, else channels-first); `output` selects the explained output.
    """

    uses_gradients = True
    #: False where the method needs to mask the input itself (Score-CAM)
    supports_tokens = True

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str | None = None,
        reshape: Reshape = None,
        *,
        output: OutputSelector = None,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__(model, output)
        self.layer_spec = layer
        self.reshape = reshape
        self.channels_last = channels_last

    def is_channels_last(self) -> bool:
        """Whether 4-D activations and image inputs are (B, H, W, C)."""
        if self.channels_last is None:
            self.channels_last = channels_last(self.model)
        return self.channels_last

    def spatial_size(self, inputs: torch.Tensor) -> tuple[int, int]:
        """(H, W) of image inputs; (1, T) for token ids."""
        if is_token_ids(inputs):
            return 1, inputs.shape[-1]
        if inputs.ndim == 4 and self.is_channels_last():
            return inputs.shape[1], inputs.shape[2]
        return inputs.shape[-2], inputs.shape[-1]

    def resolve_layer(self, inputs: torch.Tensor) -> tuple[nn.Module, str]:
        """The hooked module and its name (searched for when none was given)."""
        spec = self.layer_spec
        if spec is None:
            spec = find_cam_layer(self.model, inputs, self.output)
        return find_module(self.model, spec)

    def arrange(self, activation: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """A layer activation (or its gradient) as (B, C, h, w)."""
        last = self.is_channels_last()
        if is_token_ids(inputs):
            return to_sequence(activation, inputs.shape[-1], self.reshape, last)
        return to_grid(activation, self.reshape, last)

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        tokens = is_token_ids(inputs)
        if tokens and not self.supports_tokens:
            raise ValueError(
                f"{self.name} masks the input, and token ids cannot be masked; use grad_cam, "
                "layer_cam or hires_cam (per-token maps), or occlusion for token ids"
            )
        if not tokens and inputs.ndim == 2:
            raise ValueError(
                f"{self.name} maps a layer's grid onto an image (B, C, H, W) or token ids "
                f"(B, T); a float {tuple(inputs.shape)} input (raw audio, a signal) has no such "
                "grid. Use saliency, integrated_gradients, smoothgrad, gradient_x_input, or "
                "occlusion with window=(k,)"
            )
        layer, name = self.resolve_layer(inputs)
        raw, act = forward_from_layer(self.model, layer, inputs, track=self.uses_gradients)
        if act.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"layer {name!r} gives a {tuple(act.shape)} output whose first axis is not the "
                f"batch of {inputs.shape[0]} (a weight, or a sequence-first layer); pass another "
                "layer="
            )
        output = self.scores(raw)
        target = resolve_target(output, target)
        grads = None
        if self.uses_gradients:
            with torch.enable_grad():
                (grads,) = torch.autograd.grad(target_scores(output, target).sum(), act)
            grads = self.arrange(grads, inputs)
        activations = self.arrange(act.detach(), inputs)
        with torch.no_grad():
            layer_map = self.cam(inputs, activations, grads, target).clamp_min(0)
            size = self.spatial_size(inputs)
            up = F.interpolate(layer_map[:, None], size=size, mode="bilinear", align_corners=False)
            attributions = up[:, 0].clamp_min(0)
        meta = {}
        warning = self._zero_warning(inputs, layer_map, grads, name)
        if warning:
            warnings.warn(warning, AttributionWarning, stacklevel=2)
            meta["warning"] = warning
        if tokens:
            attributions, layer_map = attributions[:, 0], layer_map[:, 0]
        return AttributionResult(
            attributions=attributions,
            method=self.name,
            target=target_label(target),
            layer=name,
            inputs=inputs.detach(),
            layer_map=layer_map,
            meta=meta,
        )

    def _zero_warning(
        self,
        inputs: torch.Tensor,
        layer_map: torch.Tensor,
        grads: torch.Tensor | None,
        name: str,
    ) -> str | None:
        """Why some maps are all zero and which layer to try, or None when none is."""
        zero = [i for i in range(layer_map.shape[0]) if not bool((layer_map[i] > 0).any())]
        if not zero:
            return None
        try:
            ranked = cam_layers(self.model, inputs, self.output)
        except (ValueError, TypeError, RuntimeError):  # a courtesy: never hide the map for it
            ranked = []
        # the next candidate below this layer (earlier in the network), else the best one;
        # below a norm, the next norm (a transformer's previous block input)
        others = ranked[ranked.index(name) + 1 :] if name in ranked else ranked
        if name in ranked and _is_norm(find_module(self.model, name)[0]):
            others.sort(key=lambda n: not _is_norm(find_module(self.model, n)[0]))
        which = f"input{'s' if len(zero) > 1 else ''} {', '.join(map(str, zero))}"
        if grads is not None and all(not bool(grads[i].any()) for i in zero):
            why = (
                f"layer {name!r} passes no gradient to its grid positions (e.g. only a CLS "
                "token reaches the output)"
            )
            hint = f"pass layer={others[0]!r}" if others else "pass another layer="
        else:
            why = (
                f"the weighted activations of layer {name!r} are ≤ 0 everywhere (ReLU → 0; "
                "the layer's evidence points away from the target)"
            )
            hint = "try another target" + (f", or layer={others[0]!r}" if others else "")
        return f"{self.name} map of {which} is all zero: {why}; {hint}"

    def cam(
        self,
        inputs: torch.Tensor,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        target: Target,
    ) -> torch.Tensor:
        """The layer-sized map (B, h, w) before ReLU: Σ_c weights · activations by default."""
        w = self.weights(inputs, activations, grads, target)
        return (w[:, :, None, None] * activations).sum(dim=1)

    def weights(
        self,
        inputs: torch.Tensor,
        activations: torch.Tensor,
        grads: torch.Tensor | None,
        target: Target,
    ) -> torch.Tensor:
        """One weight per channel (B, C)."""
        raise NotImplementedError(f"{type(self).__name__} must override weights() or cam()")


__all__ = ["AttributionWarning", "CAMBase", "Reshape", "find_cam_layer", "to_grid", "to_sequence"]
