"""Attention weights of any module that calls ``F.scaled_dot_product_attention``.

The fused kernel never materialises the weights, so a ``TorchFunctionMode`` sees each call,
lets it run unchanged, and recomputes ``softmax(Q Kᵀ · scale + mask)`` from the same query
and key tensors, for the requested batch item, heads and query rows only: the memory kept
is heads × rows × keys (float32), one head's scores at a time on top. It honours
``attn_mask`` (bool: True takes part; float: added), ``is_causal`` (top-left aligned, as
torch), ``scale=``, and grouped/multi-query keys (``enable_gqa`` or fewer key heads: query
head h reads key head h // (Hq / Hk)). Dropout is not applied (the weights are those of an
eval pass). The layer is named after the innermost module running at the time of the call.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from deepscope.analysis.attention.base import Collected, Selection, call_model, select_item
from deepscope.capture.hooks import HookSet
from deepscope.errors import DeepscopeError

_SDPA = F.scaled_dot_product_attention
_NAMES = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")


def _mask_for(mask: torch.Tensor, item: int, head: int) -> torch.Tensor:
    """The (L or 1, S or 1) slice of a mask broadcastable to (N, H, L, S)."""
    m = mask
    while m.dim() < 4:
        m = m.unsqueeze(0)
    m = m[item if m.shape[0] > 1 else 0]
    return m[head if m.shape[0] > 1 else 0]


def sdpa_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    heads: list[int],
    rows: range,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    item: int = 0,
) -> torch.Tensor:
    """Softmax attention weights (len(heads), len(rows), S) of one call, as the kernel uses
    them. `query` is (Hq, L, E) and `key` (Hk, S, E) of batch item `item` (whose slice of
    `attn_mask` is taken here)."""
    n_q, length, dim = query.shape
    n_k, keys = key.shape[0], key.shape[1]
    if n_q % n_k:
        raise DeepscopeError(
            f"{n_q} query heads cannot share {n_k} key heads; attention with grouped keys "
            "needs a whole number of query heads per key head"
        )
    group = n_q // n_k
    dt = torch.promote_types(query.dtype, torch.float32)
    factor = 1.0 / math.sqrt(dim) if scale is None else float(scale)
    idx = torch.tensor(list(rows), dtype=torch.long, device=query.device)
    out = torch.empty(len(heads), len(rows), keys, dtype=torch.float32)
    causal = None
    if is_causal:
        causal = idx[:, None] < torch.arange(keys, device=query.device)[None, :]
    for i, h in enumerate(heads):
        q = query[h].index_select(0, idx).to(dt)
        scores = (q @ key[h // group].to(dt).transpose(0, 1)) * factor
        if causal is not None:
            scores = scores.masked_fill(causal, float("-inf"))
        if attn_mask is not None:
            m = _mask_for(attn_mask, item, h)
            if m.shape[0] > 1:
                m = m.index_select(0, idx)
            if m.dtype == torch.bool:
                scores = scores.masked_fill(~m, float("-inf"))
            else:
                scores = scores + m.to(dt)
        out[i] = torch.softmax(scores, dim=-1).nan_to_num(0.0).to("cpu", torch.float32)
    return out


class _SDPAMode(TorchFunctionMode):
    """Sees every torch function call; records the weights of SDPA calls."""

    def __init__(self, sel: Selection, out: Collected, stack: list[str]) -> None:
        super().__init__()
        self.sel, self.out, self.stack = sel, out, stack

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is _SDPA:
            self._record(dict(zip(_NAMES, args, strict=False)) | kwargs)
        return func(*args, **kwargs)

    def _record(self, call: dict[str, Any]) -> None:
        name = self.stack[-1] if self.stack else "sdpa"
        index = self.out.seen
        self.out.seen += 1
        if not self.sel.wants_layer(name, index):
            return
        q, k = call["query"], call["key"]
        if q.dim() not in (3, 4):
            self.out.meta.setdefault("skipped", []).append(f"{name}: query of shape {q.shape}")
            return
        batched = q.dim() == 4
        qi = select_item(q, self.sel.item, batched)
        ki = select_item(k, self.sel.item, batched)
        heads = self.sel.head_indices(qi.shape[0])
        rows = self.sel.query_rows(qi.shape[1])
        w = sdpa_weights(
            qi,
            ki,
            heads,
            rows,
            attn_mask=call.get("attn_mask"),
            is_causal=bool(call.get("is_causal", False)),
            scale=call.get("scale"),
            item=self.sel.item if batched else 0,
        )
        if float(call.get("dropout_p", 0.0) or 0.0) > 0:
            self.out.meta["dropout_ignored"] = True
        self.out.add(name, w, heads, qi.shape[0])


def collect_sdpa(model: nn.Module, inputs: Any, sel: Selection, **extra: Any) -> Collected:
    """Run `model` on `inputs` once, recomputing the selected weights of each SDPA call."""
    out = Collected(meta={"path": "sdpa"})
    stack: list[str] = []

    def push(name: str) -> Any:
        return lambda m, i: stack.append(name)

    def pop(m: nn.Module, i: Any, o: Any) -> None:
        if stack:
            stack.pop()

    with HookSet() as hooks:
        for name, module in model.named_modules():
            hooks.forward_pre(module, push(name or "model"))
            hooks.forward(module, pop)
        with _SDPAMode(sel, out, stack):
            call_model(model, inputs, **extra)
    return out
