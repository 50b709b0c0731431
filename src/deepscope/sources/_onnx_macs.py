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
that it happened so the caller can say so. A MatMul's unknown inner dimension is taken
from the other operand (a `[?, 32]` weight fixes K), and its output dims from the operands'
broadcast. A node whose op counts MACs but whose input shapes are unknown counts 0 and
adds one to `MacCounter.unknown`, so the caller can say the total is partial.

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
        self.unknown = 0  # MAC-counting nodes whose shapes were unknown (counted as 0)

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
        if macs is None:
            self.unknown += 1
            return 0
        return macs if 0 <= macs < _LIMIT else 0

    def _count(  # noqa: PLR0911, PLR0912
        self,
        op: str,
        attrs: dict[str, Any],
        ins: list[TensorMeta | None],
        outs: list[TensorMeta | None],
    ) -> int | None:
        def inp(i: int) -> TensorMeta | None:
            return ins[i] if i < len(ins) else None

        out = outs[0] if outs else None
        if op in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"):
            w_at, b_at = (3, 8) if op == "QLinearConv" else (1, 2)
            w = self._shape(inp(w_at))
            if w is None or len(w) < 3:
                return None
            per = w[1] * math.prod(w[2:])
            base = self._numel(inp(0)) if op == "ConvTranspose" else self._numel(out)
            bias = self._numel(out) if inp(b_at) is not None and op != "ConvInteger" else 0
            return base * per + bias
        if op == "Gemm":
            a = self._shape(inp(0))
            if not a or len(a) != 2:
                return None
            k = a[0] if attrs.get("transA") else a[1]
            n = self._numel(out)
            return n * k + (n if inp(2) is not None else 0)
        if op in ("MatMul", "MatMulInteger", "QLinearMatMul", "FusedMatMul"):
            return self._matmul(inp(0), inp(3 if op == "QLinearMatMul" else 1), out)
        if op == "Einsum":
            shapes = [self._shape(t) for t in ins]
            if any(s is None for s in shapes):
                return None
            return einsum_macs(str(attrs.get("equation", "")), [s for s in shapes if s is not None])
        if op in ("Attention", "MultiHeadAttention"):
            return self._attention(inp(0), inp(1), inp(2), attrs)
        if op in _RECURRENT:
            x = self._shape(inp(0))
            if not x or len(x) < 2:
                return None
            steps = x[0] * x[1]
            return steps * sum(self._numel(inp(i)) for i in (1, 2, 3))
        if op in _NORMS or op in _POOLS:
            if self._shape(out) is None:
                return None
            if op in _NORMS:
                return 2 * self._numel(out)
            kernel = attrs.get("kernel_shape") or []
            return self._numel(out) * math.prod(int(k) for k in kernel)
        if op in _GLOBAL_POOLS:
            return self._numel(inp(0)) if self._shape(inp(0)) is not None else None
        return 0

    def _matmul(
        self, a: TensorMeta | None, b: TensorMeta | None, out: TensorMeta | None
    ) -> int | None:
        """numel(out) * K, unknown dims filled from the other operand and the broadcast."""
        sa = list(a.shape) if a is not None and a.shape is not None else None
        sb = list(b.shape) if b is not None and b.shape is not None else None
        so = list(out.shape) if out is not None and out.shape is not None else None
        if not sa or not sb:  # an operand of unknown rank
            if so is None or not (sa or sb):
                return None
            k = sa[-1] if sa else (sb[-2] if sb and len(sb) >= 2 else None)
            return self._numel(out) * (1 if k is None else self._dim(k))
        va, vb = len(sa) == 1, len(sb) == 1
        if va:
            sa = [1, *sa]
        if vb:
            sb = [*sb, 1]
        k = sa[-1] if sa[-1] is not None else sb[-2]
        batch: list[int | None] = []
        ra, rb = sa[:-2], sb[:-2]
        for i in range(max(len(ra), len(rb)), 0, -1):
            da = ra[-i] if i <= len(ra) else 1
            db = rb[-i] if i <= len(rb) else 1
            known = [d for d in (da, db) if d is not None and d != 1]
            batch.append(known[0] if known else (1 if da == 1 and db == 1 else None))
        dims = [*batch, *([] if va else [sa[-2]]), *([] if vb else [sb[-1]])]
        if so is not None and len(so) == len(dims):
            dims = [o if o is not None else d for o, d in zip(so, dims, strict=True)]
        return math.prod(self._dim(d) for d in dims) * self._dim(k)

    def _dim(self, d: int | None) -> int:
        if d is None:
            self.assumed = True
            return 1
        return max(int(d), 0)

    def _attention(
        self,
        q: TensorMeta | None,
        k: TensorMeta | None,
        v: TensorMeta | None,
        attrs: dict[str, Any],
    ) -> int | None:
        qs, ks, vs = self._shape(q), self._shape(k), self._shape(v)
        if not qs or not ks or not vs or len(qs) != len(ks) or len(qs) not in (3, 4):
            return None
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
