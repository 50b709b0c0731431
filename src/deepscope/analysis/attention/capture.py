"""`attention(model, inputs)`: per layer and head attention weights of one forward pass.

Sources, tried in this order (``source="auto"``): ``nn.MultiheadAttention`` modules; a
Hugging Face model on eager attention (``output_attentions=True``); any module calling
``F.scaled_dot_product_attention`` (intercepted and recomputed for the requested heads).
The model runs once, in eval mode (dropout off) and without gradients; its modes, hooks
and the MHA fast-path switch are restored whether the call returns or raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from deepscope.analysis.attention.base import Collected, HeadSpec, LayerSpec, Selection, eval_mode
from deepscope.analysis.attention.huggingface import (
    attn_implementation,
    collect_huggingface,
    is_huggingface,
    patch_grid,
)
from deepscope.analysis.attention.mha import collect_mha, mha_layers
from deepscope.analysis.attention.result import Attention
from deepscope.analysis.attention.sdpa import collect_sdpa
from deepscope.errors import DeepscopeError

SOURCES = ("auto", "mha", "huggingface", "sdpa")


def _queries(queries: slice | tuple[int, int] | int | None) -> slice:
    if queries is None:
        return slice(None)
    if isinstance(queries, slice):
        return queries
    if isinstance(queries, int):
        return slice(queries, queries + 1)
    start, stop = queries
    return slice(start, stop)


def _source(model: nn.Module, source: str) -> str:
    if source not in SOURCES:
        raise DeepscopeError(f"source must be one of {SOURCES}, not {source!r}")
    if source != "auto":
        return source
    if mha_layers(model):
        return "mha"
    if is_huggingface(model) and attn_implementation(model) == "eager":
        return "huggingface"
    return "sdpa"


def _tokens(
    inputs: Any,
    tokens: Sequence[str] | None,
    tokenizer: Any,
    item: int,
    n_keys: int,
    grid: tuple[int, int] | None,
) -> list[str]:
    if tokens is not None:
        out = [str(t) for t in tokens]
        if len(out) != n_keys:
            raise DeepscopeError(f"got {len(out)} tokens for {n_keys} attended positions")
        return out
    if tokenizer is not None and isinstance(inputs, Mapping) and "input_ids" in inputs:
        ids = inputs["input_ids"]
        row = ids[item] if getattr(ids, "dim", lambda: 1)() == 2 else ids
        return [str(t) for t in tokenizer.convert_ids_to_tokens(row.tolist())]
    if grid is not None and grid[0] * grid[1] in (n_keys, n_keys - 1):
        extra = ["[CLS]"] if grid[0] * grid[1] == n_keys - 1 else []
        return extra + [f"{r},{c}" for r in range(grid[0]) for c in range(grid[1])]
    return [str(i) for i in range(n_keys)]


def attention(
    model: nn.Module,
    inputs: Any,
    layers: LayerSpec = None,
    heads: HeadSpec = None,
    *,
    item: int = 0,
    queries: slice | tuple[int, int] | int | None = None,
    tokens: Sequence[str] | None = None,
    tokenizer: Any = None,
    patch_grid_size: tuple[int, int] | None = None,
    source: str = "auto",
    block: int | None = None,
    top_k: int = 8,
    generate: int | None = None,
) -> Attention:
    """Attention weights of `model` on `inputs` (a tensor, a tuple of arguments, or a
    mapping such as a tokenizer's output), for batch item `item`.

    `layers`: names, globs or indices (in the order attention runs) of attention layers;
    None keeps all. `heads`: head indices (the same for every layer); None keeps all.
    `queries`: only these query positions (a slice, ``(start, stop)`` or one index) — with
    the SDPA source only heads × those rows × keys are ever materialised, which bounds
    memory on long sequences. `tokens` labels positions (or `tokenizer` turns
    ``inputs["input_ids"]`` into tokens); ViT-style models label patches ``row,col``.
    `source`: "auto" (MHA modules, then Hugging Face eager, then SDPA), or one of them.
    `block`: for long sequences, keep per layer only the max and mean of each block × block
    tile and the `top_k` largest keys per query (`result.pooled[layer]`); on the SDPA path
    the weights are then computed a chunk of query rows at a time, never whole.
    `generate`: for a decoder language model, greedily generate that many tokens after
    the prompt (`inputs`: its ids) and keep each generated token's attention row over the
    prompt and earlier tokens (see `attention_generate`).

    Example:
        >>> import torch, deepscope
        >>> mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
        >>> class Net(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.attn = mha
        ...     def forward(self, x):
        ...         return self.attn(x, x, x, need_weights=False)[0]
        >>> a = deepscope.attention(Net(), torch.rand(1, 5, 8))
        >>> a.layers, tuple(a["attn"].shape), a.meta["path"]
        (['attn'], (2, 5, 5), 'mha')
    """
    if not isinstance(model, nn.Module):
        raise DeepscopeError(
            f"attention needs a torch nn.Module, got {type(model).__name__}; load the model "
            "in PyTorch first"
        )
    if generate is not None:
        from deepscope.analysis.attention.generate import attention_generate

        if source == "mha" or block is not None or queries is not None or item:
            raise DeepscopeError(
                "generate= follows one prompt and keeps each new token's row: it takes no "
                "block=, queries=, item= or source='mha'"
            )
        return attention_generate(
            model, inputs, generate, layers, heads, tokens=tokens, tokenizer=tokenizer,
            source=source,
        )  # fmt: skip
    sel = Selection(layers=layers, heads=heads, item=item, queries=_queries(queries))
    if block is not None and (block < 1 or sel.queries.step not in (None, 1)):
        raise DeepscopeError("block= needs a positive block size and contiguous queries=")
    sel.block, sel.top_k = block, max(0, top_k) if block else 0
    path = _source(model, source)
    with torch.no_grad(), eval_mode(model):
        collected: Collected
        if path == "mha":
            collected = collect_mha(model, inputs, sel)
        elif path == "huggingface":
            collected = collect_huggingface(model, inputs, sel)
        else:
            collected = collect_sdpa(model, inputs, sel)
    if not collected.heads:
        found = collected.seen
        raise DeepscopeError(
            f"no attention weights captured on the {path!r} path ({found} attention calls seen"
            f"{', none matched layers=' + repr(layers) if found else ''}); the model needs "
            "nn.MultiheadAttention, a Hugging Face model, or F.scaled_dot_product_attention"
        )
    if is_huggingface(model) and path == "sdpa":
        collected.meta["attn_implementation"] = attn_implementation(model)
    if collected.pooled:
        n_keys = next(iter(collected.pooled.values())).shape[-1]
        collected.meta["pooled"] = {"block": block, "top_k": sel.top_k}
    else:
        n_keys = next(iter(collected.weights.values())).shape[-1]
    grid = patch_grid_size or (patch_grid(model) if is_huggingface(model) else None)
    names = _tokens(inputs, tokens, tokenizer, item, n_keys, grid)
    collected.meta.update(
        {"item": item, "layers_seen": collected.seen, "n_heads": dict(collected.n_heads)}
    )
    return Attention(
        weights=collected.weights,
        heads=collected.heads,
        tokens=names,
        queries=sel.query_rows(collected.n_queries),
        patch_grid=grid,
        meta=collected.meta,
        pooled=collected.pooled,
    )
