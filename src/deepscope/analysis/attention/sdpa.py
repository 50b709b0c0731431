"""Attention weights of any module that calls ``F.scaled_dot_product_attention``.

The fused kernel never materialises the weights, so a ``TorchFunctionMode`` sees each call,
lets it run unchanged, and recomputes ``softmax(Q Kᵀ · scale + mask)`` from the same query
and key tensors, for the requested batch item, heads and query rows only: the memory kept
is heads × rows × keys (float32), the same again as scratch while computing; with
``block=`` (pooling) the scratch is heads × 256 rows × keys and only the pooled view is kept. It honours
``attn_mask`` (bool: True takes part; float: added), ``is_causal`` (top-left aligned, as
torch), ``scale=``, and grouped/multi-query keys (``enable_gqa`` or fewer key heads: query
head h reads key head h // (Hq / Hk)). Dropout is not applied (the weights are those of an
eval pass). A query row that no key may attend to (a left-padded decoder's padding) gets
all zeros, as the kernel's output for it is 0 (eager Hugging Face code spreads it evenly).
The layer is named after the innermost module running at the time of the call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from deepscope.analysis.attention.base import Collected, Selection, call_model, select_item
from deepscope.analysis.attention.pooling import Pooler, chunk_rows
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


def head_chunks(
    query: torch.Tensor,
    key: torch.Tensor,
    heads: list[int],
    rows: range,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    item: int = 0,
    chunk: int | None = None,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield `(r0, w)`: the float32 weights `w` (len(heads), n, S) of the requested heads
    for rows r0 .. r0 + n of `rows`, `chunk` query rows at a time (all at once when None).
    `query` is (Hq, L, E) and `key` (Hk, S, E) of batch item `item` (whose slice of
    `attn_mask` is taken here)."""
    n_q, _, dim = query.shape
    n_k, keys = key.shape[0], key.shape[1]
    if n_q % n_k:
        raise DeepscopeError(
            f"{n_q} query heads cannot share {n_k} key heads; attention with grouped keys "
            "needs a whole number of query heads per key head"
        )
    group = n_q // n_k
    dt = torch.promote_types(query.dtype, torch.float32)
    factor = 1.0 / math.sqrt(dim) if scale is None else float(scale)
    device = query.device
    all_idx = torch.tensor(list(rows), dtype=torch.long, device=device)
    step = chunk or max(len(rows), 1)
    key_pos = torch.arange(keys, device=device)
    head_idx = torch.tensor(heads, dtype=torch.long, device=device)
    q_sel = query.index_select(0, head_idx)  # (h, L, E): the requested heads only
    k_t = key.index_select(0, head_idx // group).to(dt).transpose(1, 2)  # (h, E, S)
    masks = None
    if attn_mask is not None:
        masks = torch.stack([_mask_for(attn_mask, item, h) for h in heads])  # (h, L|1, S|1)
    for r0 in range(0, len(rows), step):
        idx = all_idx[r0 : r0 + step]
        scores = (q_sel.index_select(1, idx).to(dt) @ k_t) * factor
        if is_causal:
            scores = scores.masked_fill(idx[:, None] < key_pos[None, :], float("-inf"))
        if masks is not None:
            m = masks.index_select(1, idx) if masks.shape[1] > 1 else masks
            if m.dtype == torch.bool:
                scores = scores.masked_fill(~m, float("-inf"))
            else:
                scores = scores + m.to(dt)
        yield r0, torch.softmax(scores, dim=-1).nan_to_num(0.0).to("cpu", torch.float32)


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
    them (see `head_chunks` for the arguments)."""
    out = torch.empty(len(heads), len(rows), key.shape[1], dtype=torch.float32)
    for r0, w in head_chunks(query, key, heads, rows, attn_mask, is_causal, scale, item):
        out[:, r0 : r0 + w.shape[1]] = w
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
        self.out.n_queries = self.out.n_queries or qi.shape[1]
        args = (qi, ki, heads, rows, call.get("attn_mask"), bool(call.get("is_causal", False)))
        options: dict[str, Any] = {
            "scale": call.get("scale"),
            "item": self.sel.item if batched else 0,
        }
        if self.sel.block:
            pooler = Pooler(len(heads), len(rows), ki.shape[1], self.sel.block, self.sel.top_k)
            for r0, w in head_chunks(*args, **options, chunk=chunk_rows(self.sel.block)):
                pooler.feed(r0, w)
            self.out.add_pooled(name, pooler.result(), heads, qi.shape[0])
        else:
            self.out.add(name, sdpa_weights(*args, **options), heads, qi.shape[0])
        if float(call.get("dropout_p", 0.0) or 0.0) > 0:
            self.out.meta["dropout_ignored"] = True


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
            out.output = call_model(model, inputs, **extra)
    return out
