"""What every attention source shares: which layers, heads, batch item and queries to keep,
how to call the model on its inputs, and running it with dropout off.

A source (`mha`, `huggingface`, `sdpa`) fills a `Collected` with one (heads, queries, keys)
float32 tensor per kept layer; `capture.attention` turns it into an `Attention` result.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deepscope.analysis.attention.pooling import Pooled, Pooler
from deepscope.errors import DeepscopeError

LayerSpec = Sequence[str | int] | str | int | None
HeadSpec = Sequence[int] | int | None


@dataclass
class Selection:
    """Which weights to keep: `layers` (names, globs or indices in call order; None = all),
    `heads` (indices; None = all), batch `item`, the `queries` rows (a slice), and for
    long sequences `block` (keep block-pooled max/mean, not the matrix) and `top_k`."""

    layers: LayerSpec = None
    heads: HeadSpec = None
    item: int = 0
    queries: slice = field(default_factory=lambda: slice(None))
    block: int | None = None
    top_k: int = 0

    def wants_layer(self, name: str, index: int) -> bool:
        """Whether the `index`-th attention layer (in call order), called `name`, is kept."""
        if self.layers is None:
            return True
        specs = [self.layers] if isinstance(self.layers, (str, int)) else list(self.layers)
        for spec in specs:
            if isinstance(spec, int) and spec == index:
                return True
            if isinstance(spec, str) and (spec == name or fnmatch.fnmatchcase(name, spec)):
                return True
        return False

    def head_indices(self, n_heads: int) -> list[int]:
        """The requested heads of a layer with `n_heads` heads (checked)."""
        if self.heads is None:
            return list(range(n_heads))
        wanted = [self.heads] if isinstance(self.heads, int) else list(self.heads)
        bad = [h for h in wanted if not 0 <= h < n_heads]
        if bad:
            raise DeepscopeError(
                f"heads {bad} do not exist: this layer has {n_heads} heads (0..{n_heads - 1}); "
                "pass heads= within that range"
            )
        return wanted

    def query_rows(self, n_queries: int) -> range:
        """The query positions kept out of `n_queries`."""
        return range(n_queries)[self.queries]


@dataclass
class Collected:
    """What a source found: per layer the kept weights, head indices, and notes for `meta`."""

    weights: dict[str, torch.Tensor] = field(default_factory=dict)
    heads: dict[str, list[int]] = field(default_factory=dict)
    n_heads: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    seen: int = 0  # attention calls seen, kept or not
    n_queries: int = 0  # query length of the first kept layer, before `queries=`

    pooled: dict[str, Pooled] = field(default_factory=dict)
    output: Any = None  # what the model returned (generation reads its logits and cache)

    def _key(self, name: str) -> str:
        key, k = name, 1
        while key in self.weights or key in self.pooled:
            key, k = f"{name}#{k}", k + 1
        return key

    def add(self, name: str, weights: torch.Tensor, heads: list[int], n_heads: int) -> None:
        """Keep `weights` (heads, queries, keys) of layer `name`; a second call of the same
        module is kept as `name#1`, `name#2`, ..."""
        key = self._key(name)
        self.weights[key] = weights.detach().to("cpu", torch.float32)
        self.heads[key], self.n_heads[key] = heads, n_heads

    def add_pooled(self, name: str, pooled: Pooled, heads: list[int], n_heads: int) -> None:
        """Keep the pooled view of layer `name` instead of its matrix."""
        key = self._key(name)
        self.pooled[key] = pooled
        self.heads[key], self.n_heads[key] = heads, n_heads

    def keep(self, name: str, weights: torch.Tensor, sel: Selection, n_heads: int) -> None:
        """`add` the kept (heads, rows, keys) weights, or their pooled view when `sel.block`."""
        heads = sel.head_indices(n_heads)
        if not sel.block:
            self.add(name, weights, heads, n_heads)
            return
        h, r, s = weights.shape
        pooler = Pooler(h, r, s, sel.block, sel.top_k)
        pooler.feed_all(weights.detach().cpu())
        self.add_pooled(name, pooler.result(), heads, n_heads)


def call_model(model: nn.Module, inputs: Any, **extra: Any) -> Any:
    """`model(**inputs)` for a mapping (a tokenizer's output), `model(*inputs)` for a tuple,
    else `model(inputs)`; `extra` keyword arguments are added."""
    if isinstance(inputs, Mapping):
        return model(**inputs, **extra)
    if isinstance(inputs, tuple):
        return model(*inputs, **extra)
    return model(inputs, **extra)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Run `model` in eval mode (dropout off) and give every module its mode back after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def select_item(t: torch.Tensor, item: int, batched: bool) -> torch.Tensor:
    """Batch item `item` of `t` when the call was batched (checked)."""
    if not batched:
        return t
    if not 0 <= item < t.shape[0]:
        raise DeepscopeError(
            f"item={item} is outside the batch of {t.shape[0]}; pass item= between 0 and "
            f"{t.shape[0] - 1}"
        )
    return t[item]
