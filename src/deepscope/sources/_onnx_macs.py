"""Multiply-accumulates of ONNX nodes from their op and (inferred) shapes.

The conventions are those of `deepscope.sources._macs` (torchinfo's), so a model and its
ONNX export agree: Conv/ConvTranspose/Gemm count their bias as one MAC per output
element, MatMul counts `numel(out) * K`, and an `Add` of a 1-D initializer to a MatMul
output (how exporters write a Linear on 3-D inputs) is that Linear's bias. Attention ops
count Q·K and A·V; recurrent ops count every weight and bias once per step and batch row;
norms two per output element; pools their window reads. Exporters fold an inference
BatchNorm into the Conv before it, so such a file holds (and shows) fewer MACs than the
live model.

A dimension that is symbolic (`batch`, `seq`) counts as 1; `MacCounter.assumed` records
that it happened so the caller can say so.

Example:
    >>> counter = MacCounter()
    >>> counter.node("MatMul", "", {}, [TensorMeta((2, 3)), TensorMeta((3, 4))], [TensorMeta((2, 4))])
    24
"""

from __future__ import annotations

import math
from typing import Any

from deepscope.graph.ir import TensorMeta
from deepscope.sources._macs import einsum_macs

__all__ = ["MacCounter"]

_NORMS = {
    "BatchNormalization",
    "InstanceNormalization",
    "GroupNormalization",
    "LayerNormalization",
    "RMSNormalization",
    "SimplifiedLayerNormalization",
    "SkipLayerNormalization",
    "SkipSimplifiedLayerNormalization",
}
_POOLS = {"MaxPool", "AveragePool", "LpPool", "QLinearAveragePool"}
_GLOBAL_POOLS = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "QLinearGlobalAveragePool"}
_RECURRENT = {"LSTM", "GRU", "RNN"}
_LIMIT = 1 << 80  # products past this are nonsense shapes: count nothing


class MacCounter:
    """Counts MACs node by node; `assumed` is True once a symbolic dim was taken as 1."""

    def __init__(self) -> None:
        self.assumed = False

    def _shape(self, t: TensorMeta | None) -> tuple[int, ...] | None:
        if t is None or t.shape is None:
            return None
        if any(d is None for d in t.shape):
            self.assumed = True
        return tuple(1 if d is None else max(int(d), 0) for d in t.shape)

    def _numel(self, t: TensorMeta | None) -> int:
        s = self._shape(t)
        return math.prod(s) if s is not None else 0

    def node(
        self,
        op: str,
        domain: str,
        attrs: dict[str, Any],
        ins: list[TensorMeta | None],
        outs: list[TensorMeta | None],
    ) -> int:
        """MACs of one node; `ins`/`outs` are positional (None for an absent optional input)."""
        if domain not in ("", "ai.onnx", "com.microsoft"):
            return 0
        try:
            macs = self._count(op, attrs, ins, outs)
        except (TypeError, ValueError, IndexError, ZeroDivisionError):
            return 0  # attributes or shapes that make no sense: no MACs rather than a guess
        return macs if 0 <= macs < _LIMIT else 0

    def _count(  # noqa: PLR0911, PLR0912
        self,
        op: str,
        attrs: dict[str, Any],
        ins: list[TensorMeta | None],
        outs: list[TensorMeta | None],
    ) -> int:
        def inp(i: int) -> TensorMeta | None:
            return ins[i] if i < len(ins) else None

        out = outs[0] if outs else None
        if op in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"):
            w_at, b_at = (3, 8) if op == "QLinearConv" else (1, 2)
            w = self._shape(inp(w_at))
            if w is None or len(w) < 3:
                return 0
            per = w[1] * math.prod(w[2:])
            base = self._numel(inp(0)) if op == "ConvTranspose" else self._numel(out)
            bias = self._numel(out) if inp(b_at) is not None and op != "ConvInteger" else 0
            return base * per + bias
        if op == "Gemm":
            a = self._shape(inp(0))
            if not a or len(a) != 2:
                return 0
            k = a[0] if attrs.get("transA") else a[1]
            n = self._numel(out)
            return n * k + (n if inp(2) is not None else 0)
        if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul"):
            lhs = self._shape(inp(0))
            return self._numel(out) * (lhs[-1] if lhs else 0)
        if op == "Einsum":
            shapes = [self._shape(t) for t in ins]
            if any(s is None for s in shapes):
                return 0
            return einsum_macs(str(attrs.get("equation", "")), [s for s in shapes if s is not None])
        if op in ("Attention", "MultiHeadAttention"):
            return self._attention(inp(0), inp(1), inp(2), attrs)
        if op in _RECURRENT:
            x = self._shape(inp(0))
            if not x or len(x) < 2:
                return 0
            steps = x[0] * x[1]
            return steps * sum(self._numel(inp(i)) for i in (1, 2, 3))
        if op in _NORMS:
            return 2 * self._numel(out)
        if op in _POOLS:
            kernel = attrs.get("kernel_shape") or []
            return self._numel(out) * math.prod(int(k) for k in kernel)
        if op in _GLOBAL_POOLS:
            return self._numel(inp(0))
        return 0

    def _attention(
        self,
        q: TensorMeta | None,
        k: TensorMeta | None,
        v: TensorMeta | None,
        attrs: dict[str, Any],
    ) -> int:
        qs, ks, vs = self._shape(q), self._shape(k), self._shape(v)
        if not qs or not ks or not vs or len(qs) != len(ks) or len(qs) not in (3, 4):
            return 0
        if len(qs) == 4:  # (batch, heads, seq, head size)
            return math.prod(qs[:-1]) * ks[-2] * (qs[-1] + vs[-1])
        # (batch, seq, heads * head size): per head d and dv, summed over heads
        q_heads = int(attrs.get("q_num_heads") or attrs.get("num_heads") or 1)
        kv_heads = int(attrs.get("kv_num_heads") or q_heads)
        d, dv = qs[-1] // q_heads, vs[-1] // kv_heads
        return qs[0] * q_heads * qs[1] * ks[1] * (d + dv)

    def bias_add(self, out: TensorMeta | None) -> int:
        """The bias of a Linear written as MatMul + Add: one MAC per output element."""
        return self._numel(out)
