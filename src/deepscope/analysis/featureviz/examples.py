"""A layer's top-k dataset examples per channel, for `atlas`.

Two measures of how much an input excites channel c:

- ``"mean"``: the channel's mean over all positions, the quantity `visualize` maximises
  for ``channels(layer)``, so an optimised image and the examples are scored alike; the
  examples are whole inputs (one pass for the scores, one to fetch the winners);
- ``"max"``: the channel's maximum over positions, as `deepscope.unit_stats` ranks inputs;
  the examples are its receptive-field crops (whole inputs for units without them).

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    >>> ex = top_examples(net, "1", [torch.rand(5, 1, 8, 8)], 3, "mean", False, False)
    >>> len(ex.items[0]), ex.values[0] == sorted(ex.values[0], reverse=True)
    (3, True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from deepscope.analysis.featureviz.optimize import _Capture

Measure = Literal["mean", "max"]

__all__ = ["Examples", "Measure", "channel_scores", "top_examples"]


@dataclass
class Examples:
    """`items[c]`: channel c's examples (C, h, w), best first; `values[c]` their scores."""

    items: list[list[torch.Tensor]]
    values: list[list[float]]


def _first(batch: Any) -> torch.Tensor:
    return torch.as_tensor(batch[0] if isinstance(batch, (tuple, list)) else batch)


def channel_scores(
    model: nn.Module, layer: str, x: torch.Tensor, measure: Measure, last: bool
) -> torch.Tensor:
    """(N, C): each input's score on each channel of `layer` (`x` as the model takes it)."""
    was_training = model.training
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with _Capture(model, frozenset([layer]), last) as cap, torch.no_grad():
            acts = cap.run(x.to(device))
    finally:
        model.train(was_training)
    out = acts[layer].detach().float().cpu().movedim(cap.axes[layer], 1)
    flat = out.reshape(out.shape[0], out.shape[1], -1)
    return flat.mean(dim=2) if measure == "mean" else flat.amax(dim=2)


def _whole_inputs(loader: Iterable[Any], wanted: set[int], last: bool) -> dict[int, torch.Tensor]:
    """Inputs by loader-order index (a second pass; first element of tuple batches)."""
    found: dict[int, torch.Tensor] = {}
    offset = 0
    for batch in loader:
        x = _first(batch)
        for j in range(x.shape[0]):
            if offset + j in wanted:
                item = x[j].detach().cpu()
                found[offset + j] = item.permute(2, 0, 1) if last and item.ndim == 3 else item
        offset += x.shape[0]
    return found


def _by_mean(model: nn.Module, layer: str, loader: Iterable[Any], k: int, last: bool) -> Examples:
    best_v: torch.Tensor | None = None
    best_i: torch.Tensor | None = None
    offset = 0
    for batch in loader:
        x = _first(batch)
        scores = channel_scores(model, layer, x, "mean", last)  # (n, C)
        idx = torch.arange(offset, offset + x.shape[0]).expand(scores.shape[1], -1)
        v, i = scores.T, idx
        if best_v is not None and best_i is not None:
            v, i = torch.cat([best_v, v], dim=1), torch.cat([best_i, i], dim=1)
        top = v.topk(min(k, v.shape[1]), dim=1)
        best_v, best_i = top.values, i.gather(1, top.indices)
        offset += x.shape[0]
    if best_v is None or best_i is None:
        return Examples([], [])
    whole = _whole_inputs(loader, {int(i) for i in best_i.flatten()}, last)
    items = [[whole[int(i)] for i in row] for row in best_i]
    return Examples(items, [[float(v) for v in row] for row in best_v])


def _by_max(
    model: nn.Module, layer: str, loader: Iterable[Any], k: int, last: bool, progress: bool
) -> Examples:
    from deepscope.analysis.activations import unit_stats

    table = unit_stats(model, loader, [layer], top_k=k, progress=progress)[layer]
    whole: dict[int, torch.Tensor] = {}
    if table.crops is None:
        whole = _whole_inputs(loader, {int(i) for i in table.top_indices.flatten()}, last)
    out = Examples([], [])
    for c in range(table.top_indices.shape[0]):
        out.items.append([])
        out.values.append([])
        for slot in range(table.top_indices.shape[1]):
            if table.crops is not None:
                item = table.crops[c][slot]
                if item is None:
                    continue
                item = item.permute(2, 0, 1) if last and item.ndim == 3 else item
            else:
                item = whole[int(table.top_indices[c, slot])]
            out.items[-1].append(item)
            out.values[-1].append(float(table.top_values[c, slot]))
    return out


def top_examples(
    model: nn.Module,
    layer: str,
    loader: Iterable[Any],
    k: int,
    measure: Measure,
    last: bool,
    progress: bool,
) -> Examples:
    """Each channel's `k` best inputs of `loader` by `measure` (see the module docstring)."""
    if measure == "mean":
        return _by_mean(model, layer, loader, k, last)
    if measure == "max":
        return _by_max(model, layer, loader, k, last, progress)
    raise ValueError(f"measure must be 'mean' or 'max', not {measure!r}")
