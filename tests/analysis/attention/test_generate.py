"""Attention during greedy generation (GPT-2 and Llama with grouped keys, from tiny configs):
the ids equal greedy decoding without a cache, and each generated token's row equals the
matching row of ``output_attentions=True`` on the whole sequence (|Δ| ≤ 1e-5), on the
eager and on the SDPA (intercepted, KV-cache) path."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import deepscope
from deepscope.analysis.attention import attention_generate
from deepscope.errors import DeepscopeError

transformers = pytest.importorskip("transformers")

NEW, PROMPT = 5, 6


def _gpt2(impl: str) -> Any:
    cfg = transformers.GPT2Config(
        vocab_size=40,
        n_embd=16,
        n_layer=2,
        n_head=4,
        n_positions=32,
        initializer_range=0.5,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation=impl,
    )
    return transformers.GPT2LMHeadModel(cfg)


def _llama(impl: str) -> Any:
    cfg = transformers.LlamaConfig(
        vocab_size=40,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.5,
        attn_implementation=impl,
    )
    return transformers.LlamaForCausalLM(cfg)


def _greedy(model: Any, ids: torch.Tensor, n: int) -> list[int]:
    out = ids
    with torch.no_grad():
        for _ in range(n):
            nxt = model(input_ids=out, use_cache=False).logits[0, -1].argmax()
            out = torch.cat([out, nxt.view(1, 1)], dim=1)
    return out[0, ids.shape[1] :].tolist()


@pytest.mark.parametrize("build", [_gpt2, _llama], ids=["gpt2", "llama-gqa"])
def test_rows_equal_output_attentions_on_the_whole_sequence(build: Any) -> None:
    torch.manual_seed(0)
    eager = build("eager").eval()
    sdpa = build("sdpa").eval()
    sdpa.load_state_dict(eager.state_dict())
    ids = torch.randint(1, 40, (1, PROMPT))
    expected_ids = _greedy(eager, ids, NEW)
    whole = torch.cat([ids, torch.tensor([expected_ids])], dim=1)
    with torch.no_grad():
        ref = eager(input_ids=whole[:, :-1], output_attentions=True).attentions
    for model, path in ((eager, "huggingface"), (sdpa, "sdpa")):
        g = attention_generate(model, ids, NEW)
        assert g.meta["path"] == path and g.meta["generated"] == expected_ids
        assert g.meta["prompt_length"] == PROMPT
        assert g.queries == range(PROMPT - 1, PROMPT - 1 + NEW)
        assert g.tokens == [str(i) for i in whole[0].tolist()]
        assert len(g.layers) == len(ref)
        for i, w in enumerate(ref):
            got = g[i]
            assert got.shape == (w.shape[1], NEW, PROMPT + NEW)
            want = w[0, :, PROMPT - 1 :, :]  # rows of the predicting positions
            assert float((got[:, :, : PROMPT + NEW - 1] - want).abs().max()) <= 1e-5
            assert torch.all(got[:, :, -1] == 0)  # the last token is never attended
            assert torch.all(got.triu(PROMPT) == 0)  # no row reads a later token
    assert len(set(expected_ids)) > 1  # the test exercises changing inputs


def test_public_generate_keyword_and_head_selection() -> None:
    torch.manual_seed(1)
    model = _llama("sdpa").eval()
    ids = torch.randint(1, 40, (PROMPT,))
    full = attention_generate(model, ids, 3)
    part = deepscope.attention(model, ids, layers=[1], heads=[7, 0], generate=3)
    assert part.layers == [full.layers[1]] and part.heads[part.layers[0]] == [7, 0]
    torch.testing.assert_close(part[0], full[1][[7, 0]], atol=1e-6, rtol=0)
    stopped = attention_generate(model, ids, 4, eos_token_id=full.meta["generated"][0])
    assert stopped.meta["generated"] == full.meta["generated"][:1]
    assert stopped[0].shape == (8, 1, PROMPT + 1)
    tokens = attention_generate(model, ids, 2, tokens=[f"w{i}" for i in range(PROMPT)])
    assert tokens.tokens[:PROMPT] == [f"w{i}" for i in range(PROMPT)]


def test_generation_refuses_what_it_cannot_follow() -> None:
    torch.manual_seed(2)
    base = transformers.GPT2Model(
        transformers.GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2)
    )
    with pytest.raises(DeepscopeError, match="language-model head"):
        attention_generate(base, torch.tensor([[1, 2, 3]]), 2)
    lm = _gpt2("sdpa")
    with pytest.raises(DeepscopeError, match="one prompt"):
        attention_generate(lm, torch.ones(2, 3, dtype=torch.long), 2)
    with pytest.raises(DeepscopeError, match="max_new_tokens"):
        attention_generate(lm, torch.tensor([1, 2]), 0)
    with pytest.raises(DeepscopeError, match="generate="):
        deepscope.attention(lm, torch.tensor([1, 2]), generate=2, block=16)
    assert not torch._C._is_torch_function_mode_enabled()
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in lm.modules())
