"""Hugging Face models from tiny configs (no download): the eager path equals
``output_attentions=True``, and the SDPA path (intercepted) gives the same weights."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from deepscope.analysis.attention import attention  # noqa: E402


def _pair(build, config_cls, **cfg):  # type: ignore[no-untyped-def]
    """The same weights on eager and on sdpa attention."""
    torch.manual_seed(0)
    eager = build(config_cls(**cfg, attn_implementation="eager")).eval()
    sdpa = build(config_cls(**cfg, attn_implementation="sdpa")).eval()
    sdpa.load_state_dict(eager.state_dict())
    assert sdpa.config._attn_implementation == "sdpa"
    return eager, sdpa


def _same(eager, sdpa, inputs, item=0, **kw):  # type: ignore[no-untyped-def]
    a = attention(eager, inputs, item=item, **kw)
    b = attention(sdpa, inputs, item=item, **kw)
    assert a.meta["path"] == "huggingface" and b.meta["path"] == "sdpa"
    with torch.no_grad():
        ref = eager(**inputs, output_attentions=True).attentions
    assert a.layers == b.layers and len(a.layers) == len(ref)
    for i, w in enumerate(ref):
        heads = a.heads[a.layers[i]]
        assert torch.equal(a[i], w[item][heads])
        torch.testing.assert_close(b[i], a[i], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b[i].sum(-1), torch.ones(b[i].shape[:2]))
    return a, b


def test_bert_eager_and_sdpa_with_padding() -> None:
    eager, sdpa = _pair(
        transformers.BertModel,
        transformers.BertConfig,
        vocab_size=60,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
    )
    ids = torch.randint(5, 60, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.long)
    mask[1, 4:] = 0
    a, b = _same(eager, sdpa, {"input_ids": ids, "attention_mask": mask}, item=1)
    assert a.layers == ["encoder.layer.0.attention.self", "encoder.layer.1.attention.self"]
    assert float(b[0][..., 4:].abs().max()) < 1e-6  # padded keys get nothing


def test_gpt2_causal_upper_triangle_is_zero() -> None:
    eager, sdpa = _pair(
        transformers.GPT2Model,
        transformers.GPT2Config,
        vocab_size=60,
        n_embd=16,
        n_layer=2,
        n_head=4,
        n_positions=32,
    )
    a, b = _same(eager, sdpa, {"input_ids": torch.randint(0, 60, (1, 7))})
    for r in (a, b):
        for layer in r.layers:
            assert torch.all(r[layer].triu(1) == 0)


def test_llama_gqa_sdpa_equals_eager_and_head_subset() -> None:
    eager, sdpa = _pair(
        transformers.LlamaModel,
        transformers.LlamaConfig,
        vocab_size=60,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    inputs = {"input_ids": torch.randint(0, 60, (1, 9))}
    _same(eager, sdpa, inputs)
    part = attention(sdpa, inputs, heads=[7, 2], queries=(3, 9), layers=[1])
    full = attention(eager, inputs)
    eager_part = attention(eager, inputs, heads=[7, 2], queries=(3, 9), layers=[1])
    assert eager_part.layers == ["layers.1.self_attn"] and eager_part[0].shape == (2, 6, 9)
    assert torch.equal(eager_part[0], full[1][[7, 2], 3:9])
    assert part.layers == ["layers.1.self_attn"] and part[0].shape == (2, 6, 9)
    torch.testing.assert_close(part[0], full[1][[7, 2], 3:9], atol=1e-5, rtol=1e-5)


def test_vit_patch_grid_tokens() -> None:
    eager, sdpa = _pair(
        transformers.ViTModel,
        transformers.ViTConfig,
        image_size=16,
        patch_size=8,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    a, b = _same(eager, sdpa, {"pixel_values": torch.randn(1, 3, 16, 16)})
    assert a.patch_grid == (2, 2) and b.patch_grid == (2, 2)
    assert a.tokens == ["[CLS]", "0,0", "0,1", "1,0", "1,1"]
    assert a[0].shape == (2, 5, 5)


class _Tok:
    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [f"t{i}" for i in ids]


def test_tokenizer_labels() -> None:
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(vocab_size=60, n_embd=16, n_layer=1, n_head=2, n_positions=16)
    model = transformers.GPT2Model(cfg).eval()
    ids = torch.tensor([[3, 4, 5], [6, 7, 8]])
    a = attention(model, {"input_ids": ids}, tokenizer=_Tok(), item=1)
    assert a.tokens == ["t6", "t7", "t8"]
