"""Can an attribution be trusted? Faithfulness (deletion/insertion) and the sanity check.

- `deletion_auc`: remove the most attributed pixels first; a faithful map makes the target
  probability fall fast (low area under the curve). `insertion_auc`: insert them into a
  baseline image first; a faithful map makes it rise fast (high area). Petsiuk et al., 2018.
- `randomization_check`: Adebayo et al., 2018. Re-initialise the model's layers (top down,
  cascading, or one at a time) on a deep copy; a method whose maps barely change (high
  Spearman rank correlation) explains the input, not the model.

Example:
    >>> import torch
    >>> from deepscope.analysis.attribution import attribute
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 2))
    >>> x = torch.rand(2, 3, 8, 8)
    >>> r = attribute(net, x, 0, method="saliency")
    >>> deletion_auc(net, x, r, 0, steps=4).shape
    torch.Size([2])
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from deepscope.analysis.attribution.base import Target, resolve_target, target_scores
from deepscope.analysis.attribution.outputs import select_output
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import find_module


def _heat(attributions: AttributionResult | torch.Tensor) -> torch.Tensor:
    if isinstance(attributions, AttributionResult):
        return attributions.heat()
    a = attributions.detach().float()
    return a.abs().sum(dim=1) if a.ndim == 4 else a


def _curve(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: AttributionResult | torch.Tensor,
    target: Target,
    steps: int,
    baseline: float,
    batch_size: int,
    insert: bool,
) -> torch.Tensor:
    x = inputs.detach()
    batch, pixels = x.shape[0], x.shape[-2] * x.shape[-1]
    heat = _heat(attributions).to(x.device)
    if heat.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"map {tuple(heat.shape)} does not match inputs {tuple(x.shape)}")
    order = heat.reshape(batch, pixels).argsort(dim=1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(pixels, device=x.device).expand(batch, -1))
    counts = torch.linspace(0, pixels, steps + 1, device=x.device).round().long()
    scores = torch.empty(steps + 1, batch, device=x.device)
    with torch.no_grad():
        target = resolve_target(select_output(model(x)), target)
        per_pass = max(1, batch_size // batch)
        for start in range(0, steps + 1, per_pass):
            k = counts[start : start + per_pass]
            changed = (rank[None] < k[:, None, None]).reshape(len(k), batch, 1, *x.shape[-2:])
            keep_input = ~changed if not insert else changed
            version = torch.where(keep_input, x[None], torch.full_like(x[None], baseline))
            output = select_output(model(version.flatten(0, 1)))
            rows = torch.arange(batch, device=x.device).repeat(len(k))
            probs = torch.softmax(output, dim=1) if not callable(target) else output
            scores[start : start + len(k)] = target_scores(probs, target, rows).reshape(len(k), -1)
    return torch.trapezoid(scores, dx=1.0 / steps, dim=0)


def deletion_auc(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: AttributionResult | torch.Tensor,
    target: Target = None,
    steps: int = 16,
    baseline: float = 0.0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Area under the target-probability curve as the top-attributed pixels are set to
    `baseline`, `steps` increments from none to all; one value per input (lower = better)."""
    return _curve(model, inputs, attributions, target, steps, baseline, batch_size, False)


def insertion_auc(
    model: nn.Module,
    inputs: torch.Tensor,
    attributions: AttributionResult | torch.Tensor,
    target: Target = None,
    steps: int = 16,
    baseline: float = 0.0,
    batch_size: int = 64,
) -> torch.Tensor:
    """Area under the target-probability curve as the top-attributed pixels are copied into
    a `baseline` image; one value per input (higher = better)."""
    return _curve(model, inputs, attributions, target, steps, baseline, batch_size, True)


def spearman(a: NDArray[Any], b: NDArray[Any]) -> float:
    """Spearman rank correlation of two arrays (ties get their average rank)."""
    ra, rb = _ranks(np.ravel(a)), _ranks(np.ravel(b))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(values: NDArray[Any]) -> NDArray[np.float64]:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    averaged: NDArray[np.float64] = (np.bincount(inverse, ranks) / counts)[inverse]
    return averaged


def randomization_check(
    model: nn.Module,
    method: str,
    inputs: torch.Tensor,
    target: Target = None,
    mode: str = "cascading",
    seed: int = 0,
    **options: Any,
) -> dict[str, float]:
    """Mean Spearman correlation between the original maps and maps of a deep copy whose
    layers are re-initialised, per layer from the output side down (`mode="cascading"`:
    this layer and all above it; `"independent"`: this layer alone). The model is untouched.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
        ...                           torch.nn.Flatten(), torch.nn.Linear(144, 2))
        >>> scores = randomization_check(net, "grad_cam", torch.rand(2, 3, 8, 8), 0, layer="1")
        >>> list(scores)
        ['3', '0']
    """
    from deepscope.analysis.attribution import METHODS, attribute

    if mode not in ("cascading", "independent"):
        raise ValueError("mode must be 'cascading' or 'independent'")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if isinstance(options.get("layer"), nn.Module):
        options["layer"] = find_module(model, options["layer"])[1]
    with torch.no_grad():
        target = resolve_target(select_output(model(inputs)), target)
    reference = attribute(model, inputs, target, method=method, **options).normalized
    names = [
        name
        for name, m in model.named_modules()
        if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False))
    ][::-1]
    scores: dict[str, float] = {}
    randomized = copy.deepcopy(model)
    for name in names:
        current = randomized if mode == "cascading" else copy.deepcopy(model)
        module = current.get_submodule(name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module.reset_parameters()  # type: ignore[operator]
        maps = attribute(current, inputs, target, method=method, **options).normalized
        scores[name] = float(
            np.mean([spearman(r, m) for r, m in zip(reference, maps, strict=True)])
        )
    return scores
