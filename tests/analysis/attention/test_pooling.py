"""Long sequences: `block=` keeps block-pooled max/mean and the top-k keys per query,
equal to pooling the full matrix by hand, and far smaller than it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepscope.analysis.attention import attention
from deepscope.analysis.attention.sdpa import head_chunks
from deepscope.errors import DeepscopeError


class Causal(nn.Module):
    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.h, self.qkv = heads, nn.Linear(d, 3 * d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = (u.view(n, t, self.h, -1).transpose(1, 2) for u in self.qkv(x).chunk(3, -1))
        return (
            F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(n, t, d)
        )


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = Causal(), Causal()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(x + self.a(x))


def _hand_pool(w: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    h, r, s = w.shape
    mx = torch.zeros(h, math.ceil(r / b), math.ceil(s / b))
    mean = torch.zeros_like(mx)
    for i in range(mx.shape[1]):
        for j in range(mx.shape[2]):
            tile = w[:, i * b : (i + 1) * b, j * b : (j + 1) * b]
            mx[:, i, j] = tile.amax(dim=(1, 2))
            mean[:, i, j] = tile.mean(dim=(1, 2))
    return mx, mean


def test_pooled_equals_hand_pooling_of_the_full_matrix() -> None:
    torch.manual_seed(0)
    net, x = Net().eval(), torch.randn(1, 37, 16)  # 37: edge tiles are partial
    full = attention(net, x)
    pooled = attention(net, x, block=8, top_k=3, queries=(0, 37))
    assert pooled.meta["pooled"] == {"block": 8, "top_k": 3}
    assert pooled.layers == ["a", "b"] and not pooled.weights
    for layer in ("a", "b"):
        p, w = pooled.pooled[layer], full[layer]
        mx, mean = _hand_pool(w, 8)
        assert p.shape == (2, 37, 37) and p.max.shape == (2, 5, 5)
        torch.testing.assert_close(p.max, mx)
        torch.testing.assert_close(p.mean, mean)
        v, k = w.topk(3, dim=-1)
        torch.testing.assert_close(p.top_values, v)
        assert torch.equal(torch.gather(w, 2, p.top_keys), p.top_values)
    with pytest.raises(DeepscopeError, match="block-pooled"):
        pooled["a"]
    assert pooled.picture("b").values.shape == (5, 5)


def test_mha_path_pools_too() -> None:
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(8, 2, batch_first=True).eval()
    x = torch.randn(1, 20, 8)
    full = attention(mha, (x, x, x))
    pooled = attention(mha, (x, x, x), block=4, top_k=2)
    assert full.layers == ["model"] and pooled.layers == ["model"]
    mx, mean = _hand_pool(full["model"], 4)
    p = pooled.pooled["model"]
    torch.testing.assert_close(p.max, mx)
    torch.testing.assert_close(p.mean, mean)


def test_long_sequence_keeps_a_small_fraction_and_works_in_chunks() -> None:
    torch.manual_seed(2)
    net, x = Net().eval(), torch.randn(1, 2048, 16)
    a = attention(net, x, block=64, top_k=8)
    p = a.pooled["b"]
    assert p.max.shape == (2, 32, 32) and p.top_keys.shape == (2, 2048, 8)
    full_bytes = 2 * 2048 * 2048 * 4
    kept = sum(t.numel() * t.element_size() for t in (p.max, p.mean, p.top_values, p.top_keys))
    assert kept * 20 <= full_bytes  # about 1/80 here
    # causal: query block 0 puts nothing on key blocks after it
    assert torch.all(p.max[:, 0, 1:] == 0)
    assert torch.all(p.top_values.sum(-1) <= 1.0 + 1e-6)
    # the SDPA path hands out at most `chunk` query rows at a time
    q = k = torch.randn(2, 300, 8)
    sizes = [w.shape for _, w in head_chunks(q, k, [1], range(300), chunk=64)]
    assert all(s[0] == 1 and s[1] <= 64 for s in sizes) and sum(s[1] for s in sizes) == 300
