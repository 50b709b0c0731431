"""Multiply-accumulate counts from shapes only (works on real, fake and meta tensors).

Conventions (the same as torchinfo and ptflops): a MAC is one multiply-add for the
traced batch; conv and linear count their bias as one MAC per output element; recurrent
layers count every weight and bias once per time step and batch row; norms count one MAC
per output element (two when affine); pooling counts the window reads; embeddings,
activations and shape ops count 0.
"""

from __future__ import annotations

import math
from typing import Any

from deepscope.graph.ir import TensorMeta

__all__ = ["einsum_macs", "function_macs", "module_macs", "normalize_op"]


def _numel(t: Any) -> int:
    if isinstance(t, TensorMeta):
        if t.shape is None or any(d is None for d in t.shape):
            return 0
        return math.prod(d for d in t.shape if d is not None)
    return 0


def _shape(t: Any) -> tuple[int, ...]:
    if isinstance(t, TensorMeta) and t.shape is not None:
        return tuple(d or 0 for d in t.shape)
    return ()


def normalize_op(name: str) -> str:
    """``"__matmul__"`` -> ``"matmul"``, ``"relu_"`` -> ``"relu"``, ``"conv2d.default"`` -> ``"conv2d"``."""
    name = name.split(".")[0]
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
        if name.startswith(("i", "r")) and name[1:] in _DUNDER_BASE:
            name = name[1:]
    return name.rstrip("_") or name


_DUNDER_BASE = {"add", "sub", "mul", "matmul", "truediv", "floordiv", "pow", "and", "or"}

_NORM_WEIGHT_ARG = {
    "layer_norm": 2,
    "batch_norm": 3,
    "group_norm": 2,
    "instance_norm": 3,
    "rms_norm": 2,
}


def _conv(inp: Any, weight: Any, bias: Any, out: Any, transposed: bool) -> int:
    w = _shape(weight)
    if len(w) < 3:
        return 0
    per = w[1] * math.prod(w[2:])
    base = _numel(inp) if transposed else _numel(out)
    return base * per + (_numel(out) if bias is not None else 0)


def _kernel(arg: Any, ndim: int) -> int:
    if isinstance(arg, int):
        return int(arg**ndim)
    if isinstance(arg, (tuple, list)) and all(isinstance(a, int) for a in arg):
        return math.prod(arg)
    return 1


def function_macs(name: str, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> int:
    """MACs of a functional op `name` whose tensor args are `TensorMeta` and output `out`."""
    op = normalize_op(name)
    a = list(args)

    def arg(i: int, key: str) -> Any:
        return a[i] if i < len(a) else kwargs.get(key)

    if op in ("conv1d", "conv2d", "conv3d"):
        return _conv(arg(0, "input"), arg(1, "weight"), arg(2, "bias"), out, False)
    if op.startswith("conv_transpose"):
        return _conv(arg(0, "input"), arg(1, "weight"), arg(2, "bias"), out, True)
    if op in ("convolution", "_convolution"):
        return _conv(a[0], a[1], a[2], out, bool(arg(6, "transposed")))
    if op == "linear":
        w = _shape(arg(1, "weight"))
        k = w[-1] if w else 0
        return _numel(out) * k + (_numel(out) if arg(2, "bias") is not None else 0)
    if op in ("matmul", "mm", "bmm"):
        lhs = _shape(arg(0, "input"))
        return _numel(out) * (lhs[-1] if lhs else 0)
    if op in ("addmm", "baddbmm"):
        mat = _shape(arg(1, "mat1" if op == "addmm" else "batch1"))
        return _numel(out) * ((mat[-1] if mat else 0) + 1)
    if op == "einsum" and a and isinstance(a[0], str):
        operands = a[1:]
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
        shapes = [t.shape for t in operands if isinstance(t, TensorMeta)]
        if len(shapes) != len(operands) or any(_unknown(s) for s in shapes):
            return 0
        return einsum_macs(a[0], [tuple(int(d or 0) for d in s or ()) for s in shapes])
    if op == "scaled_dot_product_attention":
        qs, ks, vs = _shape(arg(0, "query")), _shape(arg(1, "key")), _shape(arg(2, "value"))
        if len(qs) < 2 or len(ks) < 2 or not vs:
            return 0
        return math.prod(qs[:-1]) * ks[-2] * (qs[-1] + vs[-1])
    if op in _NORM_WEIGHT_ARG:
        i = _NORM_WEIGHT_ARG[op]
        return _numel(out) * (2 if arg(i, "weight") is not None else 1)
    if op.startswith("adaptive_") and "pool" in op:
        return _numel(arg(0, "input"))
    if "pool" in op and ("max" in op or "avg" in op):
        ndim = max(len(_shape(out)) - 2, 1)
        return _numel(out) * _kernel(arg(1, "kernel_size"), ndim)
    return 0


def _unknown(shape: Any) -> bool:
    return shape is None or any(d is None for d in shape)


def einsum_macs(equation: str, shapes: list[tuple[int, ...]]) -> int:
    """MACs of `einsum(equation, *operands)`: the product of every index's size when at
    least two operands are contracted over an index, else 0 (products and sums alone count
    0, like elementwise ops). `...` stands for broadcast dims.

    >>> einsum_macs("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)])
    120
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes) or len(terms) < 2:
        return 0
    sizes: dict[str, int] = {}
    ell_rank = max(len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes, strict=True))
    for term, shape in zip(terms, shapes, strict=True):
        letters = list(term.replace("...", "."))
        if "." in letters:
            rank = len(shape) - (len(letters) - 1)
            i = letters.index(".")
            letters[i : i + 1] = [chr(0x100 + ell_rank - rank + j) for j in range(rank)]
        if len(letters) != len(shape):
            return 0
        for letter, dim in zip(letters, shape, strict=True):
            sizes[letter] = max(sizes.get(letter, 1), dim)
    if arrow:
        kept = set(rhs.replace("...", "")) | {c for c in sizes if ord(c) >= 0x100}
    else:
        counts = [c for t in terms for c in t.replace("...", "")]
        kept = {c for c in counts if counts.count(c) == 1} | {c for c in sizes if ord(c) >= 0x100}
    if not set(sizes) - kept:
        return 0
    return math.prod(sizes.values())


def module_macs(module: Any, inputs: list[Any], out: Any) -> int:
    """MACs of one call of a leaf `module` given `TensorMeta` inputs and first output `out`."""
    from torch import nn

    x = inputs[0] if inputs else None
    if isinstance(module, nn.modules.conv._ConvNd):
        transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
        return _conv(x, _meta(module.weight), module.bias, out, transposed)
    if isinstance(module, nn.Linear):
        return _numel(out) * module.in_features + (_numel(out) if module.bias is not None else 0)
    if isinstance(module, nn.MultiheadAttention):
        return _mha_macs(module, inputs)
    if isinstance(module, nn.RNNBase):
        s = _shape(x)
        steps = s[0] if len(s) == 2 else s[0] * s[1]
        return steps * sum(p.numel() for p in module.parameters())
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm)):
        return _numel(out) * (2 if module.affine else 1)
    if isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
        return _numel(out) * (2 if module.elementwise_affine else 1)
    name = type(module).__name__
    if name.startswith("Adaptive") and "Pool" in name:
        return _numel(x)
    if isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd)):
        ndim = max(len(_shape(out)) - 2, 1)
        return _numel(out) * _kernel(module.kernel_size, ndim)
    return 0


def _meta(t: Any) -> TensorMeta:
    return TensorMeta(shape=tuple(int(d) for d in t.shape), dtype=None)


def _mha_macs(m: Any, inputs: list[Any]) -> int:
    if len(inputs) < 3:
        return 0
    q, k = _shape(inputs[0]), _shape(inputs[1])
    if len(q) == 3:
        n, tgt = (q[0], q[1]) if m.batch_first else (q[1], q[0])
        src = k[1] if m.batch_first else k[0]
    elif len(q) == 2:
        n, tgt, src = 1, q[0], k[0]
    else:
        return 0
    e = m.embed_dim
    proj = tgt * e * e + src * m.kdim * e + src * m.vdim * e
    if m.in_proj_bias is not None:
        proj += (tgt + 2 * src) * e
    attn = 2 * tgt * src * e
    out = tgt * e * e + (tgt * e if m.out_proj.bias is not None else 0)
    return int(n * (proj + attn + out))
