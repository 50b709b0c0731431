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
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["STAT_FIELDS", "StatsAccumulator", "tensor_stats"]

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
        a = np.asarray(values)
        if a.dtype.kind == "c":
            a = np.abs(a)
        a = a.astype(np.float64, copy=False).reshape(-1)
        part = StatsAccumulator()
        part.count = int(a.size)
        if a.size:
            finite_mask = np.isfinite(a)
            nan = int(np.isnan(a).sum())
            part.n_nan = nan
            part.n_inf = int(a.size - int(finite_mask.sum())) - nan
            part.n_zero = int((a == 0).sum())
            f = a[finite_mask]
            if f.size:
                part.finite = int(f.size)
                part.min, part.max = float(f.min()), float(f.max())
                part.mean = float(f.mean())
                part.m2 = float(((f - part.mean) ** 2).sum())
                part.sumsq = float(np.dot(f, f))
        self.merge(part)

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


def accumulate(values: NDArray[Any], chunk: int = 1 << 22) -> StatsAccumulator:
    """An accumulator over `values` (memory-mapped is fine: `chunk` elements at a time)."""
    acc = StatsAccumulator()
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        return acc
    for start in range(0, flat.size, chunk):
        acc.add(flat[start : start + chunk])
    return acc


def tensor_stats(values: NDArray[Any], chunk: int = 1 << 22) -> dict[str, Any]:
    """Statistics of one array (see the module docstring for each field)."""
    return accumulate(values, chunk).result()
