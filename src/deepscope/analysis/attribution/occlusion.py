"""Occlusion (Zeiler & Fergus, 2014), captum-compatible.

A window slides over the input with `strides`; each position is replaced by `baselines` and
the drop of the target score, F(x) − F(x_occluded), is credited to every element the window
covered, averaged over the windows that covered it. Occluded copies run `batch_size` at a time.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    >>> r = Occlusion(net, window=(2, 2), strides=2).attribute(torch.rand(1, 1, 4, 4), target=0)
    >>> r.attributions.shape
    torch.Size([1, 1, 4, 4])
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from deepscope.analysis.attribution.base import (
    Attribution,
    Target,
    resolve_target,
    target_label,
    target_scores,
)
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import first_tensor


def _tuple(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    return (value,) * n if isinstance(value, int) else tuple(value)


class Occlusion(Attribution):
    """Sliding-window occlusion. `window` covers the trailing input dims (a window shorter
    than the per-example shape spans the leading dims, e.g. all channels, whole)."""

    name = "occlusion"

    def __init__(
        self,
        model: nn.Module,
        window: Sequence[int] = (8, 8),
        strides: int | Sequence[int] = 4,
        baselines: float = 0.0,
        batch_size: int = 64,
    ) -> None:
        super().__init__(model)
        self.window = tuple(window)
        self.strides = strides
        self.baselines = baselines
        self.batch_size = batch_size

    def _regions(self, shape: tuple[int, ...]) -> list[tuple[slice, ...]]:
        lead = len(shape) - len(self.window)
        window = shape[:lead] + self.window
        strides = (1,) * lead + _tuple(self.strides, len(self.window))
        if lead:
            strides = shape[:lead] + strides[lead:]
        counts = []
        for size, win, stride in zip(shape, window, strides, strict=True):
            if win > size or win < 1:
                raise ValueError(f"occlusion window {window} does not fit inputs of shape {shape}")
            counts.append(math.ceil((size - win) / stride) + 1)
        return [
            tuple(
                slice(p * s, p * s + w) for p, s, w in zip(position, strides, window, strict=True)
            )
            for position in itertools.product(*(range(c) for c in counts))
        ]

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        x = inputs.detach()
        batch = x.shape[0]
        regions = self._regions(tuple(x.shape[1:]))
        total = torch.zeros_like(x)
        coverage = torch.zeros(x.shape[1:], device=x.device)
        with torch.no_grad():
            output = first_tensor(self.model(x))
            target = resolve_target(output, target)
            reference = target_scores(output, target)
            per_pass = max(1, self.batch_size // batch)
            for start in range(0, len(regions), per_pass):
                chunk = regions[start : start + per_pass]
                k = len(chunk)
                m = torch.zeros((k, *x.shape[1:]), dtype=torch.bool, device=x.device)
                for n, region in enumerate(chunk):
                    m[n][region] = True
                coverage += m.sum(0)
                occluded = torch.where(m[:, None], self.baselines, x[None]).flatten(0, 1)
                rows = torch.arange(batch, device=x.device).repeat(k)
                scores = target_scores(first_tensor(self.model(occluded)), target, rows)
                drop = (reference.repeat(k) - scores).reshape(k, batch)
                total += (drop.reshape(k, batch, *([1] * (x.ndim - 1))) * m[:, None]).sum(0)
        return AttributionResult(
            attributions=total / coverage.clamp_min(1),
            method=self.name,
            target=target_label(target),
            inputs=x,
        )
