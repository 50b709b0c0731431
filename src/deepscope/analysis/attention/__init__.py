"""Attention: per layer and head attention weights, rollout and heatmaps over tokens.

- `attention(model, inputs, layers=None, heads=None)` → `Attention` (`result[layer]` is
  heads × queries × keys; `result.rollout()`; `result.picture(layer, head)` → a `Picture`
  with `.save/.show/.image`).

Sources: ``nn.MultiheadAttention``, Hugging Face eager models (``output_attentions``), and
any ``F.scaled_dot_product_attention`` call (intercepted, recomputed for requested heads).
"""

from deepscope.analysis.attention.capture import attention
from deepscope.analysis.attention.result import Attention
from deepscope.analysis.attention.rollout import fuse_heads, rollout
from deepscope.analysis.attention.sdpa import sdpa_weights

__all__ = ["Attention", "attention", "fuse_heads", "rollout", "sdpa_weights"]
