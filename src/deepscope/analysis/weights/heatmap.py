"""A weight tensor as a matrix, reduced by max-|w| pooling when larger than the picture.

`as_matrix`: 2-D as is, conv kernels (out, in, kh, kw) as (out, in·kh·kw), 1-D as a
(1, n) strip, higher ranks flattened after the first axis. `maxabs_pool` keeps, in every
block, the element of largest magnitude with its sign, so a single extreme weight in a
50,000 × 4,096 embedding still shows. The picture itself is drawn by
`deepscope.render.weights.render_diverging` (diverging colormap centred at 0).

Example:
    >>> import numpy as np
    >>> maxabs_pool(np.array([[1.0, -5.0], [2.0, 3.0]]), 1, 1).tolist()
    [[-5.0]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BF16_INF", "as_matrix", "canonical", "maxabs_pool", "pool_bits", "pooled"]


def canonical(values: NDArray[Any], layout: str) -> NDArray[Any]:
    """Keras kernels ((kh, kw, in, out) / (in, out)) in torch order ((out, in, kh, kw) / (out, in))."""
    if layout == "keras":
        if values.ndim == 4:
            return np.transpose(values, (3, 2, 0, 1))
        if values.ndim == 3:  # Conv1D (k, in, out)
            return np.transpose(values, (2, 1, 0))
        if values.ndim == 2:
            return values.T
    return values


def as_matrix(values: NDArray[Any]) -> NDArray[Any]:
    """The 2-D view of a tensor drawn by a heatmap."""
    a = np.asarray(values)
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    return a.reshape(a.shape[0], -1)


def _pick(a: NDArray[Any], f: int, axis: int) -> NDArray[Any]:
    """Every `f` consecutive elements along `axis` (0 or 1) reduced to the one of largest
    |value| (of +w and -w the negative, as `pool_bits` picks; NaN only where all are NaN):
    `f` strided passes."""

    def part(k: int) -> NDArray[Any]:
        return a[k::f] if axis == 0 else a[:, k::f]

    best = np.array(part(0))
    best_mag = np.nan_to_num(np.abs(best), nan=-1.0, posinf=np.inf)
    for k in range(1, f):
        v = part(k)
        mag = np.abs(v)
        better = (mag > best_mag) | ((mag == best_mag) & (v < best))  # NaN never wins
        np.copyto(best, v, where=better)
        np.copyto(best_mag, mag, where=better)
    return best


#: The bits of +Inf in bfloat16 (for `pool_bits` on stored bf16 tensors).
BF16_INF = 0x7F80
# float itemsize -> (unsigned bits, |bits| of +Inf)
_KEYS: dict[int, tuple[type[np.unsignedinteger[Any]], int]] = {
    2: (np.uint16, 0x7C00),
    4: (np.uint32, 0x7F800000),
    8: (np.uint64, 0x7FF0000000000000),
}


def _block_max(x: NDArray[Any], fy: int, fx: int, rows_out: int) -> NDArray[Any]:
    """Max over blocks of `fy` rows × `fx` columns (the last ones may be partial) of an
    unsigned-integer band holding `rows_out` × fy rows or fewer."""
    n, c = x.shape
    if n != rows_out * fy:  # the last band: pad with 0 (+0.0, which never wins)
        padded = np.zeros((rows_out * fy, c), dtype=x.dtype)
        padded[:n] = x
        x = padded
    by_rows = x.reshape(rows_out, fy, c).max(axis=1)
    full = (c // fx) * fx
    parts = []
    if full:
        parts.append(by_rows[:, :full].reshape(rows_out, -1, fx).max(axis=2))
    if full != c:
        parts.append(by_rows[:, full:].max(axis=1, keepdims=True))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


def pool_bits(bits: NDArray[Any], fy: int, fx: int, inf_mag: int) -> NDArray[Any] | None:
    """Max-|w| pooling of a matrix of IEEE float bit patterns (unsigned integers; `inf_mag`
    the bits of +Inf), with two integer block maxima over the stored bits and no copy:
    read as signed integers, the block max is the largest positive (its bits order like
    its magnitude); read as unsigned, the largest negative magnitude (sign bit set). The
    larger magnitude wins, the negative on ties. Returns the pooled bit patterns, or None
    when a band holds a NaN (the caller then takes the exact float path)."""
    utype = bits.dtype.type
    stype = np.dtype(f"i{bits.dtype.itemsize}").type
    sign = utype(1 << (8 * bits.dtype.itemsize - 1))
    r, c = bits.shape
    ro, co = math.ceil(r / fy), math.ceil(c / fx)
    out = np.empty((ro, co), dtype=utype)
    band = max(1, (1 << 22) // max(fy * c, 1))  # output rows per band (~4M inputs)
    for o0 in range(0, ro, band):
        o1 = min(ro, o0 + band)
        rows = np.ascontiguousarray(bits[o0 * fy : o1 * fy])
        pos = _block_max(rows.view(stype), fy, fx, o1 - o0)
        neg = _block_max(rows, fy, fx, o1 - o0)
        has_pos, pos_u = pos >= 0, pos.view(utype)  # no positive: the block's max is < 0
        has_neg, neg_mag = neg >= sign, neg & utype(sign - 1)
        if (has_pos & (pos_u > inf_mag)).any() or (has_neg & (neg_mag > inf_mag)).any():
            return None
        negative = has_neg & (~has_pos | (neg_mag >= pos_u))
        out[o0:o1] = np.where(negative, neg, pos_u)
    return out


def _fast_pool(m: NDArray[Any], fy: int, fx: int) -> NDArray[np.float64] | None:
    utype, inf_mag = _KEYS[m.dtype.itemsize]
    out = pool_bits(np.asarray(m).view(utype), fy, fx, inf_mag)
    return None if out is None else np.asarray(out.view(m.dtype), dtype=np.float64)


def maxabs_pool(matrix: NDArray[Any], fy: int, fx: int) -> NDArray[np.float64]:
    """Blocks of `fy` × `fx` reduced to their largest-|w| element (sign kept; NaN ignored
    unless a block is all NaN; ±Inf wins; of +w and -w the negative). Float matrices
    without NaN are pooled on their bit patterns (an integer max over bands of rows, read
    once: a memory-mapped tensor is read only here); others are reduced rows first, then
    columns, in bands of rows so memory stays small."""
    m = np.asarray(matrix)
    r, c = m.shape
    if fy <= 1 and fx <= 1:
        return np.asarray(m, dtype=np.float64)
    if m.dtype.kind == "f" and m.dtype.itemsize in _KEYS and m.dtype.isnative:
        fast = _fast_pool(m, fy, fx)
        if fast is not None:
            return fast
    work = np.float32 if m.dtype.itemsize <= 4 and m.dtype.kind in "fiu" else np.float64
    ro, co = math.ceil(r / fy), math.ceil(c / fx)
    out = np.empty((ro, co), dtype=np.float64)
    band = max(1, (1 << 20) // max(fy * c, 1))  # output rows per band (~1M inputs)
    for o0 in range(0, ro, band):
        o1 = min(ro, o0 + band)
        rows = np.asarray(m[o0 * fy : o1 * fy], dtype=work)
        n = rows.shape[0]
        if n != (o1 - o0) * fy or c != co * fx:
            padded = np.full(((o1 - o0) * fy, co * fx), np.nan, dtype=work)
            padded[:n, :c] = rows
            rows = padded
        pooled_rows = _pick(rows, fy, axis=0)  # (band, co·fx), contiguous passes
        out[o0:o1] = _pick(pooled_rows, fx, axis=1)
    return out


def pooled(matrix: NDArray[Any], max_rows: int, max_cols: int) -> tuple[NDArray[Any], int, int]:
    """`matrix` reduced to at most `max_rows` × `max_cols`; also the pooling factors."""
    r, c = matrix.shape
    fy = max(1, math.ceil(r / max_rows))
    fx = max(1, math.ceil(c / max_cols))
    return maxabs_pool(matrix, fy, fx), fy, fx
