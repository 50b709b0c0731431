"""One contract over every source: Hugging Face BERT, GPT-2, Llama (grouped keys) and ViT
from tiny configs equal ``output_attentions=True`` within 1e-5 on the eager and the SDPA
path (text models with a padded batch item); nn.MultiheadAttention and
nn.TransformerEncoder (fast path globally off and on, nested tensors with padding) equal a
hand computation; rollout equals hand-written numbers on three layers; and every path
leaves no hook, no function mode and the model's modes as they were, after success and
after an exception."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepscope.analysis.attention import Attention, attention, attention_generate

transformers = pytest.importorskip("transformers")

TEXT = dict(vocab_size=50)


def _bert(impl: str) -> Any:
    cfg = transformers.BertConfig(
        **TEXT, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=32, attn_implementation=impl,
    )  # fmt: skip
    return transformers.BertModel(cfg)


def _gpt2(impl: str) -> Any:
    cfg = transformers.GPT2Config(
        **TEXT, n_embd=16, n_layer=2, n_head=4, n_positions=32, attn_implementation=impl
    )
    return transformers.GPT2Model(cfg)


def _llama(impl: str) -> Any:
    cfg = transformers.LlamaConfig(
        **TEXT, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=64,
        attn_implementation=impl,
    )  # fmt: skip
    return transformers.LlamaModel(cfg)


def _vit(impl: str) -> Any:
    cfg = transformers.ViTConfig(
        image_size=16, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=32, attn_implementation=impl,
    )  # fmt: skip
    return transformers.ViTModel(cfg)


def _text_inputs() -> dict[str, torch.Tensor]:
    ids = torch.randint(1, 50, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.long)
    mask[1, :2] = 0  # item 1: two padded positions (left padding, as decoders batch)
    return {"input_ids": ids, "attention_mask": mask}


HF = [
    ("bert", _bert, _text_inputs),
    ("gpt2", _gpt2, _text_inputs),
    ("llama-gqa", _llama, _text_inputs),
    ("vit", _vit, lambda: {"pixel_values": torch.randn(2, 3, 16, 16)}),
]


@pytest.mark.parametrize("name,build,make_inputs", HF, ids=[h[0] for h in HF])
def test_huggingface_equals_output_attentions_on_both_paths(
    name: str, build: Callable[[str], Any], make_inputs: Callable[[], dict[str, torch.Tensor]]
) -> None:
    torch.manual_seed(0)
    eager = build("eager").eval()
    sdpa = build("sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    inputs = make_inputs()
    with torch.no_grad():
        ref = eager(**inputs, output_attentions=True).attentions
    for model, path in ((eager, "huggingface"), (sdpa, "sdpa")):
        for item in (0, 1):
            got = attention(model, inputs, item=item)
            assert got.meta["path"] == path and len(got.layers) == len(ref)
            # a left-padded decoder's padding queries see no key at all: eager spreads
            # them uniformly (its mask adds the dtype's min, not -inf), the SDPA kernel
            # outputs 0 for them and the recomputed weights are 0 too
            skip = 2 if item == 1 and name in ("gpt2", "llama-gqa") else 0
            for i, w in enumerate(ref):
                assert got[i].shape == w[item].shape
                diff = (got[i][:, skip:] - w[item][:, skip:]).abs().max()
                assert float(diff) <= 1e-5, (name, path, item, i)
                if skip and path == "sdpa":
                    assert torch.all(got[i][:, :skip] == 0)


def _hand_mha(mha: nn.MultiheadAttention, q: torch.Tensor, kv: torch.Tensor, pad: Any) -> Any:
    """softmax((x Wq)(x Wk)ᵀ/√d) per head from the module's own projection weights."""
    wq, wk, _ = mha.in_proj_weight.chunk(3)
    bq, bk, _ = mha.in_proj_bias.chunk(3)
    h, d = mha.num_heads, mha.embed_dim // mha.num_heads
    qh = F.linear(q, wq, bq).view(q.shape[0], q.shape[1], h, d).transpose(1, 2)
    kh = F.linear(kv, wk, bk).view(kv.shape[0], kv.shape[1], h, d).transpose(1, 2)
    s = qh @ kh.transpose(-1, -2) / math.sqrt(d)
    if pad is not None:
        s = s.masked_fill(pad[:, None, None, :], float("-inf"))
    return torch.softmax(s, dim=-1)


@contextmanager
def _fastpath(enabled: bool) -> Iterator[None]:
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


@pytest.mark.parametrize("fast", [False, True], ids=["fastpath-off", "fastpath-on"])
def test_mha_and_transformer_encoder_equal_hand_computation(fast: bool) -> None:
    torch.manual_seed(1)
    mha = nn.MultiheadAttention(12, 3, batch_first=True).eval()
    x, mem = torch.randn(2, 4, 12), torch.randn(2, 6, 12)
    pad = torch.zeros(2, 6, dtype=torch.bool)
    pad[0, 4:] = True
    layer = nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=True).eval()
    src = torch.randn(2, 5, 16)
    src_pad = torch.zeros(2, 5, dtype=torch.bool)
    src_pad[1, 3:] = True  # with the fast path on, this batch becomes a nested tensor
    with _fastpath(fast), torch.no_grad():
        got = attention(mha, (x, mem, mem, pad))
        assert got.layers == ["model"]
        torch.testing.assert_close(got[0], _hand_mha(mha, x, mem, pad)[0], atol=1e-6, rtol=1e-5)
        for item in (0, 1):
            a = attention(enc, (src, None, src_pad), item=item)
            assert torch.backends.mha.get_fastpath_enabled() is fast
            h = src
            for i, lay in enumerate(enc.layers):
                hand = _hand_mha(lay.self_attn, h, h, src_pad)[item]
                torch.testing.assert_close(a[i], hand, atol=1e-6, rtol=1e-5)
                torch.testing.assert_close(
                    a[i][:, : 3 if item else 5].sum(-1), torch.ones(4, 3 if item else 5)
                )
                h = lay(h, src_key_padding_mask=src_pad)


def test_rollout_three_layers_equals_hand_numbers() -> None:
    # per layer two heads whose mean is A1, A2, A3 (2 tokens)
    a1 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[1.0, 0.0], [1.0, 0.0]]])
    a2 = torch.tensor([[[0.0, 1.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])
    a3 = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]]])  # mean: all 0.5
    # (A + I)/2: Â1 = [[1, 0], [.5, .5]], Â2 = [[.5, .5], [0, 1]], Â3 = [[.75, .25], [.25, .75]]
    # Â2·Â1 = [[.75, .25], [.5, .5]]; Â3·(Â2·Â1) = [[.6875, .3125], [.5625, .4375]]
    res = Attention({"a": a1, "b": a2, "c": a3}, {k: [0, 1] for k in "abc"}, ["x", "y"], range(2))
    torch.testing.assert_close(
        res.rollout(), torch.tensor([[0.6875, 0.3125], [0.5625, 0.4375]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        res.rollout(layers=["b", "c"]),
        torch.tensor([[0.375, 0.625], [0.125, 0.875]], dtype=torch.float64),
    )


class _Raising(nn.Module):
    """Wraps a model; raises after it ran (hooks and modes are live at that point)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.inner(*args, **kwargs)
        raise RuntimeError("boom")


def _hooks(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Every hook id on every module (transformers keeps hooks of its own: compare)."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
    return {f"{n}.{k}": tuple(getattr(m, k)) for n, m in model.named_modules() for k in kinds}


def _no_traces(model: nn.Module, hooks_before: dict[str, tuple[int, ...]], training: bool) -> None:
    assert not torch._C._is_torch_function_mode_enabled()
    assert _hooks(model) == hooks_before
    for m in model.modules():
        assert not m._forward_hooks_with_kwargs and not m._forward_pre_hooks_with_kwargs
        assert m.training is training
    assert torch.backends.mha.get_fastpath_enabled()


def _warm(model: nn.Module, x: Any) -> None:
    """Let transformers install its own output-capturing hooks before the snapshot."""
    if hasattr(model, "config"):
        with torch.no_grad():
            model(x, output_attentions=True)


CASES: list[tuple[str, Callable[[], tuple[nn.Module, Any]], dict[str, Any]]] = [
    ("mha", lambda: (nn.TransformerEncoder(
        nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 1, enable_nested_tensor=False
    ), torch.randn(1, 4, 8)), {}),
    ("sdpa", lambda: (_llama("sdpa"), torch.randint(0, 50, (1, 5))), {}),
    ("sdpa-pooled", lambda: (_llama("sdpa"), torch.randint(0, 50, (1, 5))), {"block": 2}),
    ("huggingface", lambda: (_gpt2("eager"), torch.randint(0, 50, (1, 5))), {}),
]  # fmt: skip


@pytest.mark.parametrize("name,make,kw", CASES, ids=[c[0] for c in CASES])
def test_nothing_left_behind_after_success_and_after_raise(
    name: str, make: Callable[[], tuple[nn.Module, Any]], kw: dict[str, Any]
) -> None:
    torch.manual_seed(2)
    model, x = make()
    _warm(model, x)
    model.train()
    before = _hooks(model)
    got = attention(model, x, **kw)
    assert got.meta["path"] == name.split("-")[0]
    _no_traces(model, before, training=True)
    wrapped = _Raising(model).train()
    before = _hooks(wrapped)
    source = "huggingface" if name == "huggingface" else "auto"
    with pytest.raises(RuntimeError, match="boom"):
        attention(wrapped, x, source=source, **kw)
    _no_traces(wrapped, before, training=True)


def test_generation_leaves_nothing_behind_after_raise() -> None:
    torch.manual_seed(3)
    cfg = transformers.GPT2Config(**TEXT, n_embd=16, n_layer=1, n_head=2, n_positions=8)
    lm = transformers.GPT2LMHeadModel(cfg)
    _warm(lm, torch.randint(0, 50, (1, 6)))
    lm.train()
    before = _hooks(lm)
    with pytest.raises(IndexError):  # position 8 is past n_positions: the embedding raises
        attention_generate(lm, torch.randint(0, 50, (1, 6)), 5)
    _no_traces(lm, before, training=True)
