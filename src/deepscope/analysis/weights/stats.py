"""Statistics of weight tensors: streamed in chunks, NaN/Inf counted and never propagated.

Every figure except `count`, `nan`, `inf` and `zeros` is over the finite values only
(`mean`, `std` (population, ddof=0), `min`, `max`, `absmax`, `l2`); they are None when a
tensor has no finite value. `zeros` is the fraction of exact zeros among all elements.
Accumulators merge (Chan's parallel formula), so a layer's and the model's figures are
exact combinations of their tensors'.

Example:
    >>> import numpy as np
    >>> s = tensor_stats(np.array([0.0, 3.0, -4.0, np.nan]))
    >>> (s["count"], s["nan"], s["absmax"], s["l2"], s["zeros"])
    (4, 1, 4.0, 5.0, 0.25)
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["CHUNK", "STAT_FIELDS", "StatsAccumulator", "accumulate", "chunk_stats", "tensor_stats"]

STAT_FIELDS = (
    "count",
    "mean",
    "std",
    "min",
    "max",
    "absmax",
    "zeros",
    "l2",
    "nan",
    "inf",
)


class StatsAccumulator:
    """Streaming statistics over chunks of any numeric dtype (computed in float64)."""

    def __init__(self) -> None:
        self.count = 0
        self.finite = 0
        self.n_nan = 0
        self.n_inf = 0
        self.n_zero = 0
        self.min = math.inf
        self.max = -math.inf
        self.mean = 0.0
        self.m2 = 0.0
        self.sumsq = 0.0

    def add(self, values: NDArray[Any]) -> None:
        """Add one chunk of values."""
        self.merge(chunk_stats(values))

    def merge(self, other: StatsAccumulator) -> None:
        """Fold another accumulator's values into this one."""
        self.count += other.count
        self.n_nan += other.n_nan
        self.n_inf += other.n_inf
        self.n_zero += other.n_zero
        if other.finite == 0:
            return
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        n_a, n_b = self.finite, other.finite
        total = n_a + n_b
        delta = other.mean - self.mean
        self.mean += delta * n_b / total
        self.m2 += other.m2 + delta * delta * n_a * n_b / total
        self.sumsq += other.sumsq
        self.finite = total

    def result(self) -> dict[str, Any]:
        """A dict with the keys of `STAT_FIELDS`."""
        has = self.finite > 0
        return {
            "count": self.count,
            "mean": self.mean if has else None,
            "std": math.sqrt(max(self.m2, 0.0) / self.finite) if has else None,
            "min": self.min if has else None,
            "max": self.max if has else None,
            "absmax": max(abs(self.min), abs(self.max)) if has else None,
            "zeros": self.n_zero / self.count if self.count else None,
            "l2": math.sqrt(self.sumsq) if has else None,
            "nan": self.n_nan,
            "inf": self.n_inf,
        }


def chunk_stats(values: NDArray[Any]) -> StatsAccumulator:
    """An accumulator over one chunk of numbers, computed in float64.

    Fast path: one float64 copy, then sum / min / max / zero count / Σx² on it (a chunk
    of `CHUNK` elements stays in the CPU cache) and Σ(x-mean)² = Σx² - n·mean², or, when
    that cancels (|mean| ≫ std), a second pass over x - mean; boolean masks only when the
    sum shows a NaN or ±Inf (or an overflow).
    """
    a = np.asarray(values)
    if a.dtype.kind == "c":
        a = np.abs(a)
    part = StatsAccumulator()
    n = int(a.size)
    part.count = n
    if n == 0:
        return part
    buf = np.array(a.reshape(-1), dtype=np.float64)  # a private copy: scratch space below
    total = float(buf.sum())
    part.n_zero = int(np.count_nonzero(buf == 0))  # a bool count: faster than on floats
    finite = buf
    if not math.isfinite(total):
        mask = np.isfinite(buf)
        nan = int(np.count_nonzero(np.isnan(buf)))
        part.n_nan = nan
        part.n_inf = n - int(np.count_nonzero(mask)) - nan
        finite = buf[mask]
        total = float(finite.sum())
    if finite.size:
        k = int(finite.size)
        part.finite = k
        part.min, part.max = float(finite.min()), float(finite.max())
        part.mean = total / k
        sumsq = float(np.einsum("i,i->", finite, finite))  # einsum: no BLAS threads to wake
        m2 = sumsq - total * part.mean
        if m2 <= 1e-3 * sumsq:  # |mean| >> std: cancellation; take the exact two-pass sum
            np.subtract(finite, part.mean, out=finite)
            m2 = float(np.einsum("i,i->", finite, finite))
        part.m2 = max(m2, 0.0)
        part.sumsq = sumsq
    return part


#: Elements per chunk: 512 KB of float64, so the passes over a chunk run in the CPU cache.
CHUNK = 1 << 16


def accumulate(
    values: NDArray[Any] | None,
    chunk: int = CHUNK,
    *,
    fetch: Callable[[int, int], NDArray[Any]] | None = None,
    size: int | None = None,
    decode: Callable[[NDArray[Any]], NDArray[Any]] | None = None,
    workers: int | None = None,
) -> StatsAccumulator:
    """An accumulator over `values`, `chunk` elements at a time (bounded memory).

    `values` may be memory-mapped. Or pass `fetch(start, stop)`, returning elements
    [start, stop) of the flattened tensor (e.g. read from the file into a small buffer),
    and its element count `size` instead. `decode` turns stored bits into numbers per
    chunk (bf16 / float8 → float32). A large tensor is split into `workers` contiguous
    slabs (default: the CPU count, up to 8) computed on threads (numpy releases the GIL)
    and merged in order.
    """
    flat = np.asarray(values).reshape(-1) if fetch is None else None
    if flat is not None:
        size = int(flat.size)
    elif size is None:
        raise ValueError("accumulate(fetch=...) needs size=")
    acc = StatsAccumulator()
    if size == 0:
        return acc

    def get(start: int, stop: int) -> NDArray[Any]:
        raw = fetch(start, stop) if fetch is not None else flat[start:stop]  # type: ignore[index]
        return decode(raw) if decode is not None else raw

    def slab(lo: int, hi: int) -> StatsAccumulator:
        part = StatsAccumulator()
        for start in range(lo, hi, chunk):
            part.merge(chunk_stats(get(start, min(hi, start + chunk))))
        return part

    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    n_slabs = max(1, min(n_workers, size // (4 * chunk)))
    if n_slabs == 1:
        return slab(0, size)
    bounds = [size * i // n_slabs for i in range(n_slabs + 1)]
    with ThreadPoolExecutor(n_slabs) as pool:
        parts = list(pool.map(slab, bounds[:-1], bounds[1:]))
    for part in parts:
        acc.merge(part)
    return acc


def tensor_stats(values: NDArray[Any], chunk: int = CHUNK) -> dict[str, Any]:
    """Statistics of one array (see the module docstring for each field)."""
    return accumulate(values, chunk).result()
