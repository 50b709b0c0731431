"""Attention: per layer and head attention weights, rollout and heatmaps over tokens.

- `attention(model, inputs, layers=None, heads=None)` → `Attention` (`result[layer]` is
  heads × queries × keys; `result.rollout()`, `.flow()`, `.head_stats()`, `.sinks()`,
  `.cluster_heads()`, `.patch_map()` / `.patch_overlay()` for ViT-style models;
  `result.picture(layer, head)` → a `Picture` with `.save/.show/.image`).
- `attention_generate(model, input_ids, max_new_tokens)` (or ``attention(...,
  generate=N)``): the attention behind each greedily generated token of a decoder LM.

Sources: ``nn.MultiheadAttention``, Hugging Face eager models (``output_attentions``), and
any ``F.scaled_dot_product_attention`` call (intercepted, recomputed for requested heads).
"""

from deepscope.analysis.attention.capture import attention
from deepscope.analysis.attention.flow import attention_flow
from deepscope.analysis.attention.generate import attention_generate
from deepscope.analysis.attention.heads import HeadClusters, HeadStat, Sink
from deepscope.analysis.attention.result import Attention
from deepscope.analysis.attention.rollout import fuse_heads, rollout
from deepscope.analysis.attention.sdpa import sdpa_weights

__all__ = [
    "Attention",
    "HeadClusters",
    "HeadStat",
    "Sink",
    "attention",
    "attention_flow",
    "attention_generate",
    "fuse_heads",
    "rollout",
    "sdpa_weights",
]
