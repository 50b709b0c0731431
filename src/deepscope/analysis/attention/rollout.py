"""Attention rollout (Abnar & Zuidema, 2020): how much each output position draws on each
input position once the residual path and every layer are taken into account.

Per layer the heads are fused (mean, max or min), the identity is added for the residual
connection, rows are renormalised to sum to 1, and the layers are multiplied through:
``R = Â_L · … · Â_2 · Â_1``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from deepscope.errors import DeepscopeError

FUSIONS = ("mean", "max", "min")


def fuse_heads(weights: torch.Tensor, head_fusion: str = "mean") -> torch.Tensor:
    """(heads, L, L) → (L, L) by `head_fusion` ("mean", "max" or "min") over heads."""
    if head_fusion == "mean":
        return weights.mean(dim=0)
    if head_fusion == "max":
        return weights.amax(dim=0)
    if head_fusion == "min":
        return weights.amin(dim=0)
    raise DeepscopeError(f"head_fusion must be one of {FUSIONS}, not {head_fusion!r}")


def rollout(layers: Sequence[torch.Tensor], head_fusion: str = "mean") -> torch.Tensor:
    """Rollout of per-layer (heads, L, L) weights given in forward order; returns (L, L)
    float64 whose rows sum to 1."""
    if not layers:
        raise DeepscopeError("rollout needs at least one layer of attention weights")
    result: torch.Tensor | None = None
    for w in layers:
        if w.dim() != 3 or w.shape[1] != w.shape[2]:
            raise DeepscopeError(
                f"rollout needs square (heads, L, L) self-attention weights over every query, "
                f"got {tuple(w.shape)}; capture without queries= and on self-attention layers"
            )
        a = fuse_heads(w.to(torch.float64), head_fusion)
        a = a + torch.eye(a.shape[0], dtype=a.dtype)
        a = a / a.sum(dim=-1, keepdim=True)
        result = a if result is None else a @ result
    assert result is not None
    return result
