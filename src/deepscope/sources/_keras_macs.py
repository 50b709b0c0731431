"""Multiply-accumulates of Keras layers from their config and shapes (never imports keras).

The conventions are those of `deepscope.sources._macs` (torchinfo/ptflops), so a Keras
model and its PyTorch twin give the same total: conv and dense count their bias as one MAC
per output element; depthwise and separable convolutions count each part; norms count
one MAC per output element (two with a learned scale or offset); pooling counts the window
reads (global pooling: every input element); recurrent layers count every weight once per
step and batch row; activations, merges, embeddings and shape ops count 0. A `None` batch
dimension counts as 1 (one sample); any other unknown dimension makes the layer's MACs 0,
and `partial_note` says how many layers that left out of the total.

Example:
    >>> weights = [("kernel", (4, 3), True), ("bias", (3,), True)]
    >>> layer_macs("Dense", {"units": 3}, [(None, 4)], (None, 3), weights)
    15
"""

from __future__ import annotations

import math
from typing import Any

from deepscope.graph.ir import Node, Shape
from deepscope.sources._keras_layers import Weight

__all__ = ["layer_macs", "partial_note"]

_COUNTED = (
    "Conv",
    "DepthwiseConv",
    "SeparableConv",
    "Dense",
    "EinsumDense",
    "BatchNormalization",
    "LayerNormalization",
    "GroupNormalization",
    "RMSNormalization",
    "Global",
    "MaxPooling",
    "AveragePooling",
    "SimpleRNN",
    "GRU",
    "LSTM",
    "Bidirectional",
    "MultiHeadAttention",
)


def partial_note(nodes: list[Node]) -> str | None:
    """A note when layers that count MACs got 0 because a non-batch dim is unknown."""
    unknown = 0
    for n in nodes:
        cls = str(n.attrs.get("class_name", ""))
        if n.macs or not cls.startswith(_COUNTED):
            continue
        shapes = [m.shape for m in (*n.inputs, *n.outputs)]
        if any(s is None or None in s[1:] for s in shapes) or not shapes:
            unknown += 1
    if not unknown:
        return None
    return (
        f"partial: {unknown} layers with unknown (non-batch) shapes count no MACs; "
        "a model saved with fixed input sizes counts them"
    )


def _numel(s: Shape | None) -> int:
    """Elements of one sample batch; 0 when any non-batch dimension is unknown."""
    if not s or any(d is None for d in s[1:]):
        return 0
    return (s[0] or 1) * math.prod(d or 0 for d in s[1:])


def _weight(ws: list[Weight], name: str) -> tuple[int, ...] | None:
    for n, shape, _ in ws:
        if n == name:
            return shape
    return None


def _has(ws: list[Weight], name: str) -> bool:
    return _weight(ws, name) is not None


def layer_macs(
    cls: str, cfg: dict[str, Any], ins: list[Shape | None], out: Shape | None, ws: list[Weight]
) -> int:
    """MACs of one call of a layer of class `cls`; `ws` are its weights (name, shape, trainable)."""
    x = ins[0] if ins else None
    n_out = _numel(out)
    bias = n_out if _has(ws, "bias") else 0
    kernel = _weight(ws, "kernel")
    if cls.startswith("Conv") and kernel:
        if "Transpose" in cls:  # kernel (*k, filters, cin): each input element fans out
            return _numel(x) * math.prod(kernel[:-1]) + bias
        return n_out * math.prod(kernel[:-1]) + bias  # (*k, cin/groups, filters)
    if cls.startswith("DepthwiseConv") and (dk := _weight(ws, "depthwise_kernel")):
        return n_out * math.prod(dk[:-2]) + bias
    if cls.startswith("SeparableConv") and (dk := _weight(ws, "depthwise_kernel")):
        pk = _weight(ws, "pointwise_kernel")
        if not pk or not pk[-1]:
            return 0
        mid, positions = pk[-2], n_out // pk[-1]  # channels between the parts; batch x spatial
        return positions * mid * math.prod(dk[:-2]) + n_out * mid + bias
    if cls == "Dense" and kernel:
        return n_out * kernel[0] + bias
    if cls in (
        "BatchNormalization",
        "LayerNormalization",
        "GroupNormalization",
        "RMSNormalization",
    ):
        return n_out * (2 if _has(ws, "gamma") or _has(ws, "beta") else 1)
    if cls.startswith("Global") and "Pooling" in cls:
        return _numel(x)
    if cls.startswith(("MaxPooling", "AveragePooling")):
        pool = cfg.get("pool_size", 2)
        if isinstance(pool, list) and all(isinstance(p, int) and p >= 0 for p in pool):
            return n_out * math.prod(pool)
        rank = max(len(out) - 2, 1) if out else 1
        return n_out * (pool**rank if isinstance(pool, int) and 0 <= pool < 1 << 20 else 0)
    if cls in ("SimpleRNN", "GRU", "LSTM", "Bidirectional") and x and len(x) == 3:
        if x[1] is None:
            return 0
        return (x[0] or 1) * x[1] * sum(math.prod(s) for _, s, _ in ws)
    if cls == "MultiHeadAttention":
        return _attention(ins, out, ws)
    return 0


def _attention(ins: list[Shape | None], out: Shape | None, ws: list[Weight]) -> int:
    q = ins[0] if ins else None
    v = ins[1] if len(ins) > 1 else q
    qk, vk = _weight(ws, "query/kernel"), _weight(ws, "value/kernel")
    if not q or not v or not qk or not vk or len(q) != 3 or None in (q[1], v[1]):
        return 0
    b, tq, tv = q[0] or 1, int(q[1] or 0), int(v[1] or 0)
    h, kd, vd = qk[1], qk[2], vk[2]
    proj = sum(
        (tq if name == "query" else tv) * math.prod(shape)
        for name in ("query", "key", "value")
        if (shape := _weight(ws, f"{name}/kernel"))
    )
    proj += sum(
        (tq if name == "query" else tv) * math.prod(shape)
        for name in ("query", "key", "value")
        if (shape := _weight(ws, f"{name}/bias"))
    )
    scores = tq * tv * h * (kd + vd)
    ok = _weight(ws, "attention_output/kernel")
    outp = tq * math.prod(ok) if ok else 0
    if _has(ws, "attention_output/bias") and out:
        outp += _numel(out) // b
    return b * (proj + scores + outp)
