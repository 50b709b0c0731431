"""`deepscope.attention` on nn.MultiheadAttention: the module's own per-head weights, heads
and query rows selected, the caller's output unchanged, and nothing left behind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import deepscope
from deepscope.analysis.attention import attention
from deepscope.errors import DeepscopeError


class TwoMHA(nn.Module):
    """Self-attention then cross-attention; the caller asks for no weights / averaged ones."""

    def __init__(self) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(12, 3, batch_first=True)
        self.cross = nn.MultiheadAttention(12, 4, batch_first=True)
        self.fail = False

    def forward(self, x: torch.Tensor, mem: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        h, none = self.self_attn(x, x, x, need_weights=False)
        assert none is None  # the caller gets what it asked for
        h2, avg = self.cross(h, mem, mem, key_padding_mask=pad)
        assert avg is not None and avg.dim() == 3  # averaged over heads, as by default
        if self.fail:
            raise RuntimeError("boom")
        return h2 + avg.sum()


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x, mem = torch.randn(2, 5, 12), torch.randn(2, 7, 12)
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[1, 5:] = True
    return x, mem, pad


def test_weights_equal_the_modules_own_need_weights_output() -> None:
    torch.manual_seed(1)
    net = TwoMHA().eval()
    x, mem, pad = _inputs()
    with torch.no_grad():
        plain = net(x, mem, pad)
    a = attention(net, (x, mem, pad), item=1)
    assert a.meta["path"] == "mha" and a.layers == ["self_attn", "cross"]
    with torch.no_grad():
        _, w_self = net.self_attn(x, x, x, average_attn_weights=False)
        h, _ = net.self_attn(x, x, x)
        _, w_cross = net.cross(h, mem, mem, key_padding_mask=pad, average_attn_weights=False)
        again = net(x, mem, pad)
    assert torch.equal(a["self_attn"], w_self[1])
    assert torch.equal(a["cross"], w_cross[1])
    assert a["cross"].shape == (4, 5, 7)
    assert torch.all(a["cross"][:, :, 5:] == 0)  # padded keys of item 1
    torch.testing.assert_close(a["cross"].sum(-1), torch.ones(4, 5))
    assert torch.equal(plain, again)
    assert a.head_names("cross") == [f"cross/head{i}" for i in range(4)]


def test_only_requested_heads_and_query_rows_are_kept() -> None:
    torch.manual_seed(2)
    net = TwoMHA().eval()
    x, mem, pad = _inputs()
    full = attention(net, (x, mem, pad))
    part = attention(net, (x, mem, pad), layers=["cross"], heads=[2, 0], queries=(1, 4))
    assert part.layers == ["cross"]
    assert part["cross"].shape == (2, 3, 7)
    assert part.heads["cross"] == [2, 0] and list(part.queries) == [1, 2, 3]
    cross = attention(net, (x, mem, pad), layers="cross")
    assert cross["cross"].shape == (4, 5, 7) and cross.queries == range(5)  # 5 queries, 7 keys
    assert len(cross.tokens) == 7
    assert torch.equal(part["cross"], full["cross"][[2, 0], 1:4])
    assert torch.equal(part.head("cross", 0), full["cross"][0, 1:4])
    with pytest.raises(DeepscopeError, match="heads"):
        attention(net, (x, mem, pad), heads=[3])  # self_attn has 3 heads


def test_transformer_encoder_fast_path_matches_hand_computation() -> None:
    torch.manual_seed(3)
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(1, 6, 16)
    assert torch.backends.mha.get_fastpath_enabled()
    a = attention(enc, x)
    assert torch.backends.mha.get_fastpath_enabled()  # switched back on
    assert a.layers == ["layers.0.self_attn", "layers.1.self_attn"]
    with torch.no_grad():
        h = x
        for i, lay in enumerate(enc.layers):
            q, k, v = (
                torch.nn.functional.linear(h, w, b)
                for w, b in zip(
                    lay.self_attn.in_proj_weight.chunk(3),
                    lay.self_attn.in_proj_bias.chunk(3),
                    strict=True,
                )
            )
            q, k = (t.view(1, 6, 4, 4).transpose(1, 2) for t in (q, k))
            hand = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)[0]
            torch.testing.assert_close(a[i], hand, atol=1e-5, rtol=1e-5)
            h = lay(h)


def test_hooks_fastpath_and_modes_restored_after_a_raising_forward() -> None:
    net = TwoMHA()
    net.train()
    net.fail = True
    before = torch.backends.mha.get_fastpath_enabled()
    with pytest.raises(RuntimeError, match="boom"):
        attention(net, _inputs())
    for m in (net.self_attn, net.cross):
        assert not m._forward_hooks and not m._forward_pre_hooks
        assert not m._forward_hooks_with_kwargs and not m._forward_pre_hooks_with_kwargs
    assert "forward" not in vars(net.self_attn)
    assert torch.backends.mha.get_fastpath_enabled() == before
    assert all(m.training for m in net.modules())  # train mode given back
    net.fail = False
    x, mem, pad = _inputs()
    _, w = net.self_attn(x, x, x, need_weights=False)
    assert w is None  # the module answers as before


def test_public_name_and_picture(tmp_path: object) -> None:
    torch.manual_seed(4)
    net = TwoMHA().eval()
    a = deepscope.attention(net, _inputs(), tokens=["a", "b", "c", "d", "e"], layers="self*")
    assert a.layers == ["self_attn"] and a.tokens == ["a", "b", "c", "d", "e"]
    pic = a.picture("self_attn", head=1)
    x0, y0, x1, y1 = pic.boxes[0]
    assert (x1 - x0) % 5 == 0 and (y1 - y0) % 5 == 0
    img = pic.image()
    assert img.ndim == 3 and img.shape[2] == 3
    # the brightest cell of the heatmap is the largest weight of head 1
    w = a.head("self_attn", 1).numpy()
    qi, ki = divmod(int(w.argmax()), w.shape[1])
    cw, ch = (x1 - x0) // 5, (y1 - y0) // 5
    cell = img[y0 + qi * ch + ch // 2, x0 + ki * cw + cw // 2].astype(int)
    assert cell.sum() > 500  # viridis' top end is bright yellow (fde725)
