"""The CAM family's base: hooks the target layer, one forward and one backward to it, ReLU,
upsampling to the input and per-image min-max scaling (pytorch-grad-cam's `BaseCAM`).

A method overrides `weights` (one weight per channel) or `cam` (the whole layer-sized map).
The backward runs only from the output to the layer (`torch.autograd.grad` on the layer's
output) and autograd records nothing before the layer, so a CAM costs about one forward pass.

Token activations (B, N, C) from ViT-style models are laid out on a grid: N tokens when N is
a square, else the last N − 1 (the CLS token dropped) when that is; `reshape` may instead
give the grid `(h, w)` (the last h·w tokens) or a callable mapping (B, N, C) to (B, C, h, w).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any, Union

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
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import HookSet, find_module, first_tensor, forward_from_layer

Reshape = Union[None, tuple[int, int], Callable[[torch.Tensor], torch.Tensor]]  # noqa: UP007

_FOUND: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str]] = (
    weakref.WeakKeyDictionary()
)


def _grid_side(n: int) -> int | None:
    side = math.isqrt(n)
    return side if side > 1 and side * side == n else None


def _spatial(shape: tuple[int, ...]) -> bool:
    if len(shape) == 4:
        return shape[2] * shape[3] > 1
    if len(shape) == 3:
        return _grid_side(shape[1]) is not None or _grid_side(shape[1] - 1) is not None
    return False


def find_cam_layer(model: nn.Module, inputs: torch.Tensor) -> str:
    """Name of the last module whose output is spatial (B, C, H, W) with H·W > 1, or token
    shaped (B, N, C) on a square grid; found with one hooked forward of the first input and
    remembered per model and input shape."""
    key = tuple(inputs.shape[1:])
    cached = _FOUND.get(model, {}).get(key)
    if cached is not None:
        return cached
    seen: list[tuple[str, tuple[int, ...]]] = []

    def record(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], None]:
        def hook(_m: nn.Module, _i: tuple[Any, ...], output: Any) -> None:
            try:
                seen.append((name, tuple(first_tensor(output).shape)))
            except TypeError:
                pass

        return hook

    with HookSet() as hooks, torch.no_grad():
        for name, module in model.named_modules():
            if name:
                hooks.forward(module, record(name))
        model(inputs[:1])
    for name, shape in reversed(seen):
        if _spatial(shape):
            _FOUND.setdefault(model, {})[key] = name
            return name
    raise ValueError("no layer with a spatial output found; pass layer= explicitly")


def to_grid(activation: torch.Tensor, reshape: Reshape = None) -> torch.Tensor:
    """(B, C, h, w) from a conv activation or a (B, N, C) token activation."""
    if callable(reshape):
        return reshape(activation)
    if activation.ndim == 4:
        return activation
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


class CAMBase(Attribution):
    """Class activation maps on one layer (`layer`: module, dotted name, or None for auto)."""

    uses_gradients = True

    def __init__(
        self, model: nn.Module, layer: nn.Module | str | None = None, reshape: Reshape = None
    ) -> None:
        super().__init__(model)
        self.layer_spec = layer
        self.reshape = reshape

    def resolve_layer(self, inputs: torch.Tensor) -> tuple[nn.Module, str]:
        """The hooked module and its name (searched for when none was given)."""
        spec = (
            self.layer_spec if self.layer_spec is not None else find_cam_layer(self.model, inputs)
        )
        return find_module(self.model, spec)

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        layer, name = self.resolve_layer(inputs)
        raw, act = forward_from_layer(self.model, layer, inputs, track=self.uses_gradients)
        output = first_tensor(raw)
        target = resolve_target(output, target)
        grads = None
        if self.uses_gradients:
            with torch.enable_grad():
                (grads,) = torch.autograd.grad(target_scores(output, target).sum(), act)
            grads = to_grid(grads, self.reshape)
        activations = to_grid(act.detach(), self.reshape)
        with torch.no_grad():
            layer_map = self.cam(inputs, activations, grads, target).clamp_min(0)
            size = inputs.shape[-2:]
            up = F.interpolate(layer_map[:, None], size=size, mode="bilinear", align_corners=False)
        return AttributionResult(
            attributions=up[:, 0].clamp_min(0),
            method=self.name,
            target=target_label(target),
            layer=name,
            inputs=inputs.detach(),
            layer_map=layer_map,
        )

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
