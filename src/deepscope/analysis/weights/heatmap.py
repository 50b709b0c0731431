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

__all__ = ["as_matrix", "canonical", "maxabs_pool", "pooled"]


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
    |value| (the first on ties; NaN only where all are NaN): `f` strided passes."""

    def part(k: int) -> NDArray[Any]:
        return a[k::f] if axis == 0 else a[:, k::f]

    best = np.array(part(0))
    best_mag = np.nan_to_num(np.abs(best), nan=-1.0, posinf=np.inf)
    for k in range(1, f):
        v = part(k)
        mag = np.abs(v)
        better = mag > best_mag  # a NaN never wins: the comparison is False
        np.copyto(best, v, where=better)
        np.copyto(best_mag, mag, where=better)
    return best


def maxabs_pool(matrix: NDArray[Any], fy: int, fx: int) -> NDArray[np.float64]:
    """Blocks of `fy` × `fx` reduced to their largest-|w| element (sign kept; NaN ignored
    unless a block is all NaN; ±Inf wins). Rows are reduced first, then columns (the
    same pick, as max-|w| composes), in bands of rows so memory stays small."""
    m = np.asarray(matrix)
    r, c = m.shape
    if fy <= 1 and fx <= 1:
        return np.asarray(m, dtype=np.float64)
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
