"""Attention weights of a Hugging Face model on the eager path (``output_attentions=True``).

The model returns every layer's (batch, heads, queries, keys) weights; the requested layers,
heads, item and query rows are kept. Layers are named after the model's innermost
attention modules (e.g. ``encoder.layer.0.attention.self``), the same names the SDPA path
gives, so both paths of one model compare. A model on SDPA or another fused kernel goes
through `deepscope.analysis.attention.sdpa` instead (no weights are returned by those).
"""

from __future__ import annotations

import sys
from typing import Any

from torch import nn

from deepscope.analysis.attention.base import Collected, Selection, call_model, select_item
from deepscope.errors import DeepscopeError


def is_huggingface(model: nn.Module) -> bool:
    """Whether `model` is a ``transformers.PreTrainedModel`` (without importing transformers)."""
    tf = sys.modules.get("transformers")
    return tf is not None and isinstance(model, tf.PreTrainedModel)


def attn_implementation(model: nn.Module) -> str:
    """The attention kernel a Hugging Face model uses ("eager", "sdpa", ...)."""
    config = getattr(model, "config", None)
    return str(getattr(config, "_attn_implementation", None) or "eager")


def attention_module_names(model: nn.Module) -> list[str]:
    """Innermost modules whose class name contains "Attention", in definition order."""
    names = [n for n, m in model.named_modules() if "Attention" in type(m).__name__]
    return [n for n in names if not any(o.startswith(n + ".") for o in names)]


def patch_grid(model: nn.Module) -> tuple[int, int] | None:
    """(rows, columns) of image patches for a ViT-style config, else None."""
    config = getattr(model, "config", None)
    image, patch = getattr(config, "image_size", None), getattr(config, "patch_size", None)
    if image is None or patch is None:
        return None
    h, w = (image, image) if isinstance(image, int) else image
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    return int(h) // int(ph), int(w) // int(pw)


def collect_huggingface(model: nn.Module, inputs: Any, sel: Selection) -> Collected:
    """Run `model` with ``output_attentions=True`` and keep the selected weights."""
    out = Collected(meta={"path": "huggingface", "attn_implementation": "eager"})
    result = out.output = call_model(model, inputs, output_attentions=True)
    attentions = getattr(result, "attentions", None)
    if attentions is None and isinstance(result, dict):
        attentions = result.get("attentions")
    if not attentions:
        raise DeepscopeError(
            f"{type(model).__name__} returned no attentions with output_attentions=True; "
            "load it with attn_implementation='eager' or 'sdpa'"
        )
    names = attention_module_names(model)
    if len(names) != len(attentions):
        names = [f"layer{i}" for i in range(len(attentions))]
    for index, (name, weights) in enumerate(zip(names, attentions, strict=True)):
        out.seen += 1
        if not sel.wants_layer(name, index):
            continue
        w = select_item(weights, sel.item, batched=weights.dim() == 4)
        heads = sel.head_indices(w.shape[0])
        rows = sel.query_rows(w.shape[1])
        out.n_queries = out.n_queries or w.shape[1]
        out.keep(name, w[heads][:, rows.start : rows.stop : rows.step], sel, w.shape[0])
    out.meta["note"] = "the model materialises every layer and head on this path"
    return out
