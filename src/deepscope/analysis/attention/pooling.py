"""Long sequences: keep a block-pooled matrix and the top-k keys per query instead of the
full (heads, queries, keys) weights.

`Pooler` takes the weights of one layer a chunk of query rows at a time (the SDPA path feeds
it heads × `chunk_rows` rows at a time, so the full matrix never exists) and keeps, per
head, the max and the mean of each `block` × `block` tile and the `top_k` largest weights
of every query with their key positions. Kept memory per layer: heads × (R/b × S/b × 2 +
R × k × 2) numbers instead of heads × R × S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Pooled:
    """Block-pooled attention of one layer: `max` and `mean` (heads, ⌈R/block⌉, ⌈S/block⌉)
    over tiles of the (R queries, S keys) matrix (edge tiles average their real cells only),
    and `top_values`/`top_keys` (heads, R, k): each query's k largest weights and where."""

    block: int
    shape: tuple[int, int, int]
    max: torch.Tensor
    mean: torch.Tensor
    top_values: torch.Tensor
    top_keys: torch.Tensor


def chunk_rows(block: int, target: int = 256) -> int:
    """Rows per chunk: a whole number of blocks, about `target` rows."""
    return block * max(1, target // block)


class Pooler:
    """Accumulates the pooled view of a (heads, rows, keys) matrix fed by row chunks."""

    def __init__(self, heads: int, rows: int, keys: int, block: int, top_k: int) -> None:
        self.block, self.shape = block, (heads, rows, keys)
        rb, kb = math.ceil(rows / block), math.ceil(keys / block)
        self.max = torch.zeros(heads, rb, kb)
        self.mean = torch.zeros(heads, rb, kb)
        k = min(top_k, keys)
        self.top_values = torch.zeros(heads, rows, k)
        self.top_keys = torch.zeros(heads, rows, k, dtype=torch.long)

    def feed(self, row0: int, chunk: torch.Tensor) -> None:
        """Add rows `row0 .. row0 + n` (row0 a multiple of `block`) of every head: `chunk`
        is (heads, n, keys)."""
        b = self.block
        h, r, s = chunk.shape
        w = chunk.to(torch.float32)
        pad = (0, (-s) % b, 0, (-r) % b)
        tiles = F.pad(w, pad, value=-1.0).view(h, math.ceil(r / b), b, math.ceil(s / b), b)
        sums = F.pad(w, pad).view_as(tiles).sum(dim=(2, 4))
        counts = F.pad(torch.ones_like(w[:1]), pad).view(1, *tiles.shape[1:]).sum(dim=(2, 4))
        i0 = row0 // b
        self.max[:, i0 : i0 + tiles.shape[1]] = tiles.amax(dim=(2, 4))
        self.mean[:, i0 : i0 + tiles.shape[1]] = sums / counts
        if self.top_values.shape[-1]:
            v, k = w.topk(self.top_values.shape[-1], dim=-1)
            self.top_values[:, row0 : row0 + r] = v
            self.top_keys[:, row0 : row0 + r] = k

    def feed_all(self, weights: torch.Tensor) -> None:
        """Feed a whole (heads, rows, keys) matrix (from a path that returns it anyway)."""
        step = chunk_rows(self.block)
        for r0 in range(0, weights.shape[1], step):
            self.feed(r0, weights[:, r0 : r0 + step])

    def result(self) -> Pooled:
        """The pooled view."""
        return Pooled(self.block, self.shape, self.max, self.mean, self.top_values, self.top_keys)
