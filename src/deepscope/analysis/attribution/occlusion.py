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
from deepscope.analysis.attribution.layer_search import channels_last, is_token_ids
from deepscope.analysis.attribution.outputs import OutputSelector
from deepscope.analysis.attribution.result import AttributionResult


def _tuple(value: int | Sequence[int], n: int) -> tuple[int, ...]:
    return (value,) * n if isinstance(value, int) else tuple(value)


class Occlusion(Attribution):
    """Sliding-window occlusion. `window` covers the trailing input dims (a window shorter
    than the per-example shape spans the leading dims, e.g. all channels, whole); on
    channels-last images (Keras) it covers H and W, all channels whole.

    Token ids (integer inputs (B, T)) are occluded one token at a time by default
    (`window=(1,)`, `strides=1`), each replaced by the token id `baselines` (0 by default;
    pass the [PAD] or [MASK] id); the result holds one score per token (B, T).
    """

    name = "occlusion"

    def __init__(
        self,
        model: nn.Module,
        window: Sequence[int] | None = None,
        strides: int | Sequence[int] | None = None,
        baselines: float = 0.0,
        batch_size: int = 64,
        *,
        output: OutputSelector = None,
        channels_last: bool | None = None,
    ) -> None:
        super().__init__(model, output)
        self.window = None if window is None else tuple(window)
        self.strides = strides
        self.baselines = baselines
        self.batch_size = batch_size
        self.channels_last = channels_last

    def _regions(
        self, shape: tuple[int, ...], window: tuple[int, ...], steps: int | Sequence[int]
    ) -> list[tuple[slice, ...]]:
        lead = len(shape) - len(window)
        if lead < 0:
            raise ValueError(
                f"occlusion window {window} has more dims than each input {shape}; give one "
                "size per trailing input dim (window=(k,) for token ids)"
            )
        full = shape[:lead] + window
        strides = (1,) * lead + _tuple(steps, len(window))
        if lead:
            strides = shape[:lead] + strides[lead:]
        counts = []
        for size, win, stride in zip(shape, full, strides, strict=True):
            if win > size or win < 1:
                raise ValueError(f"occlusion window {full} does not fit inputs of shape {shape}")
            counts.append(math.ceil((size - win) / stride) + 1)
        return [
            tuple(slice(p * s, p * s + w) for p, s, w in zip(position, strides, full, strict=True))
            for position in itertools.product(*(range(c) for c in counts))
        ]

    def _baseline(self, x: torch.Tensor) -> torch.Tensor:
        if is_token_ids(x):
            if not float(self.baselines).is_integer():
                raise ValueError(
                    f"token ids are occluded by a token id; baselines={self.baselines} is not one"
                )
            return torch.tensor(int(self.baselines), dtype=x.dtype, device=x.device)
        return torch.tensor(self.baselines, dtype=x.dtype, device=x.device)

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        x = inputs.detach()
        last = self.channels_last if self.channels_last is not None else channels_last(self.model)
        last = last and x.ndim == 4 and not is_token_ids(x)
        if last:  # occlude in channels-first order; the model sees channels-last copies
            x = x.permute(0, 3, 1, 2)
        tokens = is_token_ids(x)
        window = self.window or ((1,) if tokens else (8, 8))
        steps = self.strides if self.strides is not None else (1 if tokens else 4)
        batch = x.shape[0]
        regions = self._regions(tuple(x.shape[1:]), window, steps)
        total = torch.zeros(x.shape, device=x.device)
        coverage = torch.zeros(x.shape[1:], device=x.device)
        baseline = self._baseline(x)

        def run(batch_x: torch.Tensor) -> torch.Tensor:
            return self.forward(batch_x.permute(0, 2, 3, 1) if last else batch_x)

        with torch.no_grad():
            output = run(x)
            target = resolve_target(output, target)
            reference = target_scores(output, target).float()
            per_pass = max(1, self.batch_size // batch)
            for start in range(0, len(regions), per_pass):
                chunk = regions[start : start + per_pass]
                k = len(chunk)
                m = torch.zeros((k, *x.shape[1:]), dtype=torch.bool, device=x.device)
                for n, region in enumerate(chunk):
                    m[n][region] = True
                coverage += m.sum(0)
                occluded = torch.where(m[:, None], baseline, x[None]).flatten(0, 1)
                rows = torch.arange(batch, device=x.device).repeat(k)
                scores = target_scores(run(occluded), target, rows).float()
                drop = (reference.repeat(k) - scores).reshape(k, batch)
                total += (drop.reshape(k, batch, *([1] * (x.ndim - 1))) * m[:, None]).sum(0)
        attributions = total / coverage.clamp_min(1)
        if not tokens:
            attributions = attributions.to(x.dtype)
        return AttributionResult(
            attributions=attributions.permute(0, 2, 3, 1) if last else attributions,
            method=self.name,
            target=target_label(target),
            inputs=inputs.detach(),
            meta={"layout": "channels_last"} if last else {},
        )
