"""Fill unknown dims that ONNX shape inference leaves behind, for counting MACs only.

Exporters compute attention reshapes from `Shape` ops, so inference leaves the head count
unknown (`[1, ?, 8, 16]`). Under the MAC counter's convention (a symbolic dim counts as 1)
a `Reshape` with one unknown output dim has it fixed by the input's element count; the
filled shape then follows `Transpose`, elementwise ops and `MatMul` to where MACs are
counted. The shown shapes stay as inferred: these fills hold only for batch 1.

Example:
    >>> reshape_fill((None, 8, 32), (1, None, 8, 16))
    (1, 2, 8, 16)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["ELEMENTWISE", "elementwise_fill", "reshape_fill", "transpose_fill"]

Shape = tuple[int | None, ...]

ELEMENTWISE = frozenset(
    {
        "Add", "Sub", "Mul", "Div", "Softmax", "LogSoftmax", "Dropout", "Cast", "Relu", "Gelu",
        "Erf", "Tanh", "Sigmoid", "Identity", "Where", "Sqrt", "Pow", "Neg", "Exp",
    }
)  # fmt: skip


def reshape_fill(src: Shape | None, out: Shape | None) -> Shape | None:
    """`out` with its single unknown dim fixed by `src`'s element count (symbolic = 1)."""
    if src is None or out is None or sum(d is None for d in out) != 1:
        return None
    total = math.prod(1 if d is None else d for d in src)
    known = math.prod(d for d in out if d is not None)
    if known <= 0 or total % known:
        return None
    return tuple(total // known if d is None else d for d in out)


def transpose_fill(
    src: Shape | None, perm: Sequence[int] | None, out: Shape | None
) -> Shape | None:
    """`src` permuted by `perm` (reversed when absent), where `out` has the same rank."""
    if src is None or out is None or len(src) != len(out):
        return None
    order = list(perm) if perm else list(range(len(src)))[::-1]
    if sorted(order) != list(range(len(src))):
        return None
    return tuple(o if o is not None else src[p] for o, p in zip(out, order, strict=True))


def elementwise_fill(ins: Sequence[Shape | None], out: Shape | None) -> Shape | None:
    """`out`'s unknown dims from same-rank inputs' known dims (the largest, as broadcast)."""
    if out is None or None not in out:
        return None
    filled = list(out)
    for i, d in enumerate(out):
        if d is not None:
            continue
        known = [k for s in ins if s is not None and len(s) == len(out) and (k := s[i]) is not None]
        filled[i] = max(known) if known else None
    return tuple(filled)
