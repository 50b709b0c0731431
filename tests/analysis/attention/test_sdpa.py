"""SDPA interception: a hand-written attention module that calls
F.scaled_dot_product_attention gives the explicit softmax(QKᵀ·scale + mask) weights, for the
requested heads and query rows only, with causal, bool and float masks, GQA/MQA and scale."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepscope.analysis.attention import attention

N, L, D = 2, 7, 32


class SelfAttention(nn.Module):
    """`heads` query heads over `kv` key/value heads (GQA when kv < heads)."""

    def __init__(self, heads: int = 8, kv: int = 2, mode: str = "gqa", scale: float | None = None):
        super().__init__()
        self.h, self.kv, self.mode, self.scale = heads, kv, mode, scale
        self.e = D // heads
        self.q = nn.Linear(D, D)
        self.k = nn.Linear(D, kv * self.e)
        self.v = nn.Linear(D, kv * self.e)
        self.fail = False

    def qk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n, t, _ = x.shape
        q = self.q(x).view(n, t, self.h, self.e).transpose(1, 2)
        k = self.k(x).view(n, t, self.kv, self.e).transpose(1, 2)
        v = self.v(x).view(n, t, self.kv, self.e).transpose(1, 2)
        return q, k, v

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False
    ) -> torch.Tensor:
        q, k, v = self.qk(x)
        if self.mode == "repeat":  # MQA/GQA by repeating kv heads, as many models do
            k = k.repeat_interleave(self.h // self.kv, dim=1)
            v = v.repeat_interleave(self.h // self.kv, dim=1)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=causal,
            scale=self.scale,
            enable_gqa=self.mode == "gqa",
        )
        if self.fail:
            raise RuntimeError("boom")
        return out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)


class Net(nn.Module):
    def __init__(self, **kw: object) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([SelfAttention(**kw), SelfAttention(**kw)])  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False):
        for b in self.blocks:
            x = x + b(x, mask, causal)
        return x


def explicit(block: SelfAttention, x: torch.Tensor, mask, causal: bool) -> torch.Tensor:
    """softmax(QKᵀ·scale + mask) written out; (N, heads, L, L)."""
    q, k, _ = block.qk(x)
    k = k.repeat_interleave(block.h // block.kv, dim=1)
    scale = block.scale if block.scale is not None else 1 / math.sqrt(block.e)
    s = q @ k.transpose(-1, -2) * scale
    if causal:
        s = s.masked_fill(torch.ones(L, L, dtype=torch.bool).triu(1), float("-inf"))
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else s + mask
    return torch.softmax(s, dim=-1)


def _check(net: Net, x: torch.Tensor, mask, causal: bool, item: int) -> None:
    a = attention(net, (x, mask, causal), item=item)
    assert a.meta["path"] == "sdpa" and a.layers == ["blocks.0", "blocks.1"]
    with torch.no_grad():
        h = x
        for i, b in enumerate(net.blocks):
            ref = explicit(b, h, mask, causal)[item]
            torch.testing.assert_close(a[i], ref, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(a[i].sum(-1), torch.ones(8, L))
            h = h + b(h, mask, causal)


@pytest.mark.parametrize("mode,kv", [("gqa", 2), ("repeat", 2), ("repeat", 1), ("gqa", 8)])
def test_causal_grouped_keys(mode: str, kv: int) -> None:
    torch.manual_seed(0)
    net = Net(kv=kv, mode=mode).eval()
    x = torch.randn(N, L, D)
    _check(net, x, None, True, item=1)
    a = attention(net, (x, None, True))
    assert torch.all(a[0].triu(1) == 0)  # future keys get exactly nothing


def test_bool_padding_mask_and_custom_scale() -> None:
    torch.manual_seed(1)
    net = Net(scale=0.3).eval()
    x = torch.randn(N, L, D)
    keep = torch.ones(N, 1, 1, L, dtype=torch.bool)
    keep[1, ..., 5:] = False  # item 1 has two padded positions
    _check(net, x, keep, False, item=1)
    a = attention(net, (x, keep, False), item=1)
    assert torch.all(a[1][..., 5:] == 0)


def test_float_mask_per_head_and_query() -> None:
    torch.manual_seed(2)
    net = Net().eval()
    x = torch.randn(N, L, D)
    bias = torch.randn(N, 8, L, L)
    bias[0, :, :, 3] = float("-inf")
    _check(net, x, bias, False, item=0)
    _check(net, x, bias, False, item=1)
    full = attention(net, (x, bias, False), item=1)
    part = attention(net, (x, bias, False), item=1, heads=[3, 6], queries=(2, 6))
    torch.testing.assert_close(part[1], full[1][[3, 6], 2:6])


def test_only_requested_heads_and_rows_are_materialised() -> None:
    torch.manual_seed(3)
    net = Net().eval()
    x = torch.randn(N, L, D)
    full = attention(net, (x, None, True))
    part = attention(net, (x, None, True), layers=[1], heads=[5, 0], queries=(2, 6))
    assert part.layers == ["blocks.1"]
    assert part["blocks.1"].shape == (2, 4, L)
    assert part.meta["n_heads"] == {"blocks.1": 8}
    torch.testing.assert_close(part["blocks.1"], full["blocks.1"][[5, 0], 2:6])


def test_model_output_unchanged_and_nothing_left_after_raise() -> None:
    torch.manual_seed(4)
    net = Net().eval()
    x = torch.randn(N, L, D)
    with torch.no_grad():
        before = net(x, None, True)
    attention(net, (x, None, True))
    with torch.no_grad():
        assert torch.equal(net(x, None, True), before)
    net.blocks[1].fail = True
    net.train()
    with pytest.raises(RuntimeError, match="boom"):
        attention(net, (x, None, True))
    assert not torch._C._is_torch_function_mode_enabled()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in net.modules())
    assert all(m.training for m in net.modules())
