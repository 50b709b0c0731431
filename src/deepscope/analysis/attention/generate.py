"""Attention during greedy generation of a decoder language model.

`attention_generate(model, input_ids, max_new_tokens)` runs the prompt once, then one new
token at a time through the model's key/value cache (``past_key_values``), always taking
the most likely next token. At every step it keeps, per layer and head, the attention row
of the position that predicts the next token: for generated token t that is the last
prompt position (t = 0) or the previously generated token, over the prompt and the tokens
generated before t. On a Hugging Face model with eager attention the rows come from
``output_attentions=True``, otherwise from intercepting ``F.scaled_dot_product_attention``
(recomputed for one query row, so a step costs heads × keys numbers per layer).

Works with any model called as ``model(input_ids=..., cache=..., use_cache=True)`` (or
``past_key_values=``, whichever its forward takes) that returns ``logits`` and the cache
(Hugging Face ``*ForCausalLM``: GPT-2, Llama, ...).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from deepscope.analysis.attention.base import (
    Collected,
    HeadSpec,
    LayerSpec,
    Selection,
    eval_mode,
)
from deepscope.analysis.attention.huggingface import (
    attn_implementation,
    collect_huggingface,
    is_huggingface,
)
from deepscope.analysis.attention.result import Attention
from deepscope.analysis.attention.sdpa import collect_sdpa
from deepscope.errors import DeepscopeError

_CACHE_NAMES = ("cache", "past_key_values")


def _prompt(input_ids: Any) -> torch.Tensor:
    ids = input_ids.get("input_ids") if isinstance(input_ids, dict) else input_ids
    if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.long, torch.int):
        raise DeepscopeError(
            "attention_generate needs the prompt's token ids as an integer tensor (or a "
            "tokenizer's output with 'input_ids')"
        )
    ids = ids.long()
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise DeepscopeError(
            f"attention_generate follows one prompt: pass input_ids of shape (1, n) or (n,), "
            f"got {tuple(ids.shape)}"
        )
    return ids


def _step(model: nn.Module, path: str, inputs: dict[str, Any], sel: Selection) -> Collected:
    if path == "huggingface":
        return collect_huggingface(model, inputs, sel)
    return collect_sdpa(model, inputs, sel)


def _logits_and_cache(output: Any) -> tuple[torch.Tensor, Any]:
    logits = getattr(output, "logits", None)
    if logits is None and isinstance(output, dict):
        logits = output.get("logits")
    if logits is None:
        raise DeepscopeError(
            "the model returned no logits: attention_generate needs a language-model head "
            "(e.g. GPT2LMHeadModel or LlamaForCausalLM, not GPT2Model)"
        )
    for name in _CACHE_NAMES:
        cache = getattr(output, name, None)
        if cache is None and isinstance(output, dict):
            cache = output.get(name)
        if cache is not None:
            return logits, cache
    return logits, None


def _cache_keyword(model: nn.Module) -> str:
    """``cache`` (recent transformers) or ``past_key_values``, as `model.forward` takes."""
    params = inspect.signature(model.forward).parameters
    return next((n for n in _CACHE_NAMES if n in params), "past_key_values")


def _token_strings(
    ids: list[int], tokens: Sequence[str] | None, tokenizer: Any, n_prompt: int
) -> list[str]:
    if tokenizer is not None:
        return [str(t) for t in tokenizer.convert_ids_to_tokens(ids)]
    if tokens is not None:
        given = [str(t) for t in tokens]
        if len(given) != n_prompt:
            raise DeepscopeError(f"got {len(given)} tokens for a prompt of {n_prompt}")
        return given + [str(i) for i in ids[n_prompt:]]
    return [str(i) for i in ids]


def attention_generate(
    model: nn.Module,
    input_ids: Any,
    max_new_tokens: int = 8,
    layers: LayerSpec = None,
    heads: HeadSpec = None,
    *,
    tokens: Sequence[str] | None = None,
    tokenizer: Any = None,
    eos_token_id: int | None = None,
    source: str = "auto",
) -> Attention:
    """Greedily generate up to `max_new_tokens` tokens after the prompt `input_ids` (one
    sequence) and record the attention behind each: an `Attention` whose
    ``weights[layer]`` is (heads, generated, prompt + generated); row t holds the attention
    of the position that predicted generated token t over the prompt and the tokens
    generated before it (later keys are 0). ``queries`` are those positions
    (prompt-1 .. prompt+generated-2); ``tokens`` label prompt and generated tokens (from
    `tokenizer`, else `tokens` for the prompt and ids for the rest). ``meta["generated"]``
    lists the new ids; generation stops early after `eos_token_id` when given.
    `layers`/`heads` select as in `attention`; `source` is "auto", "huggingface" (eager,
    ``output_attentions``) or "sdpa".

    Example:
        >>> import torch, transformers, deepscope                           # doctest: +SKIP
        >>> cfg = transformers.GPT2Config(vocab_size=50, n_embd=16, n_layer=2, n_head=2)
        >>> lm = transformers.GPT2LMHeadModel(cfg)                          # doctest: +SKIP
        >>> g = deepscope.attention(lm, torch.tensor([[1, 2, 3]]), generate=4)  # doctest: +SKIP
        >>> g[0].shape                   # heads, generated, prompt + generated   # doctest: +SKIP
        torch.Size([2, 4, 7])
    """
    if max_new_tokens < 1:
        raise DeepscopeError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    if source not in ("auto", "huggingface", "sdpa"):
        raise DeepscopeError(f"source must be 'auto', 'huggingface' or 'sdpa', not {source!r}")
    prompt = _prompt(input_ids)
    n_prompt = prompt.shape[1]
    eager = is_huggingface(model) and attn_implementation(model) == "eager"
    path = source if source != "auto" else ("huggingface" if eager else "sdpa")
    cache_kw = _cache_keyword(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    steps: list[Collected] = []
    generated: list[int] = []
    with torch.no_grad(), eval_mode(model):
        inputs: dict[str, Any] = {"input_ids": prompt.to(device), "use_cache": True}
        sel = Selection(layers=layers, heads=heads, queries=slice(n_prompt - 1, n_prompt))
        for _ in range(max_new_tokens):
            collected = _step(model, path, inputs, sel)
            if not collected.weights:
                raise DeepscopeError(
                    f"no attention captured on the {path!r} path during generation "
                    f"({collected.seen} attention calls seen); check layers= and source="
                )
            logits, cache = _logits_and_cache(collected.output)
            collected.output = None
            steps.append(collected)
            nxt = int(logits[0, -1].argmax())
            generated.append(nxt)
            if eos_token_id is not None and nxt == eos_token_id:
                break
            if cache is None:
                raise DeepscopeError(
                    "the model returned no past_key_values; attention_generate needs a model "
                    "with a key/value cache (use_cache=True)"
                )
            inputs = {
                "input_ids": torch.tensor([[nxt]], device=device),
                cache_kw: cache,
                "use_cache": True,
            }
            sel = Selection(layers=layers, heads=heads)
    return _assemble(steps, prompt[0].tolist() + generated, n_prompt, path, tokens, tokenizer)


def _assemble(
    steps: list[Collected],
    ids: list[int],
    n_prompt: int,
    path: str,
    tokens: Sequence[str] | None,
    tokenizer: Any,
) -> Attention:
    n_new = len(steps)
    total = len(ids)
    first = steps[0]
    weights: dict[str, torch.Tensor] = {}
    for layer in first.weights:
        h = first.weights[layer].shape[0]
        w = torch.zeros(h, n_new, total)
        for t, step in enumerate(steps):
            row = step.weights[layer][:, -1]  # (heads, keys so far)
            w[:, t, : row.shape[-1]] = row
        weights[layer] = w
    meta: dict[str, Any] = dict(first.meta)
    meta.update(
        {
            "path": path,
            "generation": True,
            "prompt_length": n_prompt,
            "generated": ids[n_prompt:],
            "n_heads": dict(first.n_heads),
            "item": 0,
        }
    )
    return Attention(
        weights=weights,
        heads=dict(first.heads),
        tokens=_token_strings(ids, tokens, tokenizer, n_prompt),
        queries=range(n_prompt - 1, n_prompt - 1 + n_new),
        meta=meta,
    )
