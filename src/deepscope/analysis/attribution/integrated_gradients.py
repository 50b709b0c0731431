"""Integrated gradients (Sundararajan et al., 2017), captum-compatible.

attribution = (x − x′) ⊙ ∫₀¹ ∂F(x′ + α(x − x′))/∂x dα, the integral approximated with
Gauss-Legendre (captum's default) or Riemann sums. Steps run in batches of at most
`internal_batch_size` rows. With `layer`, the path runs through that layer's output
(captum `LayerIntegratedGradients`; the baseline is then a layer output, zeros by default).

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> r = IntegratedGradients(net, n_steps=64).attribute(torch.ones(1, 3), target=1)
    >>> bool(r.delta.abs().max() < 1e-3)
    True
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from deepscope.analysis.attribution.base import (
    GradientAttribution,
    Target,
    expand_rows,
    resolve_target,
    target_scores,
)
from deepscope.analysis.attribution.layer_search import is_token_ids
from deepscope.analysis.attribution.outputs import OutputSelector
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import forward_from_layer

METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")


def approximation(method: str, n_steps: int) -> tuple[list[float], list[float]]:
    """`(alphas, weights)` of the quadrature `method` with `n_steps` points on [0, 1]."""
    if method == "gausslegendre":
        points, weights = np.polynomial.legendre.leggauss(n_steps)
        return (0.5 * (1 + points)).tolist(), (0.5 * weights).tolist()
    if method not in METHODS or n_steps < 2:
        raise ValueError(f"method must be one of {METHODS} (riemann needs n_steps > 1)")
    kind = method.split("_")[1]
    w = [1.0 / n_steps] * n_steps
    if kind == "trapezoid":
        # n points spaced 1/(n−1); captum weights them 1/n, so its weights sum to 1 − 1/n
        w = [1.0 / (n_steps - 1)] * n_steps
        w[0] /= 2
        w[-1] /= 2
        a = np.linspace(0, 1, n_steps)
    else:
        start = {"left": 0.0, "middle": 0.5, "right": 1.0}[kind] / n_steps
        a = start + np.arange(n_steps) / n_steps
    return a.tolist(), w


class IntegratedGradients(GradientAttribution):
    """Integrated gradients; `baselines` is a scalar or a tensor broadcastable to the inputs
    (to the layer's output with `layer`, or token ids such as all-[PAD] for token inputs). `result.delta` holds the convergence delta
    Σ attributions − (F(x) − F(x′)) per input when `convergence_delta` is true."""

    name = "integrated_gradients"

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str | None = None,
        baselines: float | torch.Tensor = 0.0,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        convergence_delta: bool = True,
        *,
        output: OutputSelector = None,
    ) -> None:
        super().__init__(model, layer, output=output)
        self.alphas, self.weights = approximation(method, n_steps)
        self.baselines = baselines
        self.internal_batch_size = internal_batch_size
        self.convergence_delta = convergence_delta

    def _endpoint(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The attributed tensor at the real input, and the model output there."""
        layer, _ = self.attributed_layer(inputs)
        if layer is None:
            with torch.no_grad():
                return inputs.detach(), self.forward(inputs)
        out, value = forward_from_layer(self.model, layer, inputs, track=False)
        return value, self.scores(out)

    def _baseline_output(self, inputs: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        layer, _ = self.attributed_layer(inputs)
        if layer is None:
            with torch.no_grad():
                return self.forward(base.expand_as(inputs))
        out, _ = forward_from_layer(
            self.model, layer, inputs, lambda v: base.expand_as(v), track=False
        )
        return self.scores(out)

    def _baseline(self, inputs: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """The baseline as a tensor like `end`; token-id baselines (an integer tensor, e.g.
        all [PAD] or [MASK]) on a layer become that layer's output for those ids."""
        given = self.baselines
        layer, _ = self.attributed_layer(inputs)
        if isinstance(given, torch.Tensor) and is_token_ids(given) and layer is not None:
            _, value = forward_from_layer(
                self.model, layer, given.to(inputs.device).expand_as(inputs), track=False
            )
            return value
        return torch.as_tensor(given, dtype=end.dtype, device=end.device)

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        end, output = self._endpoint(inputs)
        target = resolve_target(output, target)
        base = self._baseline(inputs, end)
        batch = inputs.shape[0]
        per_pass = max(1, (self.internal_batch_size or batch * len(self.alphas)) // batch)
        total = torch.zeros_like(end)
        for start in range(0, len(self.alphas), per_pass):
            alphas = self.alphas[start : start + per_pass]
            k = len(alphas)
            a = torch.tensor(alphas, dtype=end.dtype, device=end.device)
            a = a.repeat_interleave(batch).reshape(-1, *([1] * (end.ndim - 1)))
            tiled = inputs.repeat(k, *([1] * (inputs.ndim - 1)))
            tiled_base = base
            if base.ndim == end.ndim and base.shape[0] == batch:
                tiled_base = base.repeat(k, *([1] * (base.ndim - 1)))
            transform = _path(tiled_base, a)
            rows = expand_rows(batch, k, inputs.device)
            grad, _, _ = self.gradients(tiled, target, transform, rows)
            w = torch.tensor(self.weights[start : start + k], dtype=end.dtype, device=end.device)
            total += (grad.reshape(k, *end.shape) * w.reshape(-1, *([1] * end.ndim))).sum(0)
        attributions = total * (end - base)
        delta = None
        if self.convergence_delta:
            gap = target_scores(output, target) - target_scores(
                self._baseline_output(inputs, base), target
            )
            delta = attributions.reshape(batch, -1).sum(1) - gap
        return self.result(attributions, inputs, target, delta=delta)


def _path(base: torch.Tensor, alphas: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    def transform(value: torch.Tensor) -> torch.Tensor:
        return base + alphas * (value - base)

    return transform
