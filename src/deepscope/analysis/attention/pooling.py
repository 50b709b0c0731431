"""Long sequences: keep a block-pooled matrix and the top-k keys per query instead of the
full (heads, queries, keys) weights.

`Pooler` takes the weights of one layer a chunk of query rows at a time (the SDPA path feeds
it one head × `chunk_rows` rows at a time, so the full matrix never exists) and keeps, per
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

    def feed(self, head: int, row0: int, chunk: torch.Tensor) -> None:
        """Add rows `row0 .. row0 + len(chunk)` (row0 a multiple of `block`) of one head."""
        b = self.block
        r, s = chunk.shape
        w = chunk.to(torch.float32)
        pad = (0, (-s) % b, 0, (-r) % b)
        tiles = F.pad(w, pad, value=-1.0).view(-1 if r else 0, b, math.ceil(s / b), b)
        sums = F.pad(w, pad).view_as(tiles).sum(dim=(1, 3))
        counts = F.pad(torch.ones_like(w), pad).view_as(tiles).sum(dim=(1, 3))
        i0 = row0 // b
        self.max[head, i0 : i0 + tiles.shape[0]] = tiles.amax(dim=(1, 3))
        self.mean[head, i0 : i0 + tiles.shape[0]] = sums / counts
        if self.top_values.shape[-1]:
            v, k = w.topk(self.top_values.shape[-1], dim=-1)
            self.top_values[head, row0 : row0 + r] = v
            self.top_keys[head, row0 : row0 + r] = k

    def feed_all(self, weights: torch.Tensor) -> None:
        """Feed a whole (heads, rows, keys) matrix (from a path that returns it anyway)."""
        step = chunk_rows(self.block)
        for h in range(weights.shape[0]):
            for r0 in range(0, weights.shape[1], step):
                self.feed(h, r0, weights[h, r0 : r0 + step])

    def result(self) -> Pooled:
        """The pooled view."""
        return Pooled(self.block, self.shape, self.max, self.mean, self.top_values, self.top_keys)
