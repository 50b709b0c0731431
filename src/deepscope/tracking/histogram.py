"""Histograms of tensors that never raise on NaN, infinities, extreme ranges or empty input.

Finite values are binned into `bins` equal-width bins between their min and max; NaN,
+Inf and -Inf are counted apart (docs/threats.md N2, N3). Torch tensors off the CPU are reduced
where they live and only the small sketch crosses to the host, in one copy (N4).

Logging splits the work in two so the training thread stays cheap:
`begin_histogram(values)` does what must happen now (the on-device reduction, or a
snapshot of a CPU tensor) and `PendingHistogram.result()` finishes it, in any thread.
`compute_histogram` does both at once.

Example:
    >>> h = compute_histogram([1.0, 2.0, float("nan"), float("inf")], bins=4)
    >>> h.count, h.n_nan, h.n_posinf, list(h.counts)
    (2, 1, 1, [1, 0, 0, 1])
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import numpy.typing as npt

from deepscope._histdata import HistogramData

__all__ = [
    "HistogramData",
    "PendingHistogram",
    "begin_histogram",
    "compute_histogram",
    "range_edges",
    "value_range",
]

_FMAX = sys.float_info.max
_N_SCALARS = 8  # n_finite, n_nan, n_posinf, n_neginf, min, max, sum, sum_sq


class PendingHistogram:
    """A histogram whose cheap part is done; `result()` finishes it (any thread)."""

    def __init__(self, finish: Any) -> None:
        self._finish = finish
        self._result: HistogramData | None = None

    def result(self) -> HistogramData:
        """Finish the histogram (once) and return it."""
        if self._result is None:
            self._result = self._finish()
            self._finish = None
        return self._result


def compute_histogram(
    values: Any, bins: int = 64, *, max_elements: int | None = None
) -> HistogramData:
    """Histogram of `values`: python numbers, sequences, numpy arrays or torch tensors.

    A `HistogramData` passes through unchanged. `max_elements` bounds the work for huge
    tensors by binning an evenly strided sample of at most that many values (the counts
    then describe the sample). Raises `ValueError` only for complex values or bins < 1.
    """
    return begin_histogram(values, bins, max_elements=max_elements).result()


def begin_histogram(
    values: Any, bins: int = 64, *, max_elements: int | None = None
) -> PendingHistogram:
    """Do the part of a histogram that must happen in the caller's thread.

    A tensor on an accelerator is fully reduced on its device here (kernels queued on its
    stream, no host sync); a CPU tensor or numpy array is snapshotted (copied, or sampled
    when `max_elements` is set) so the caller may change it afterwards.
    """
    if isinstance(values, HistogramData):
        done = values
        return PendingHistogram(lambda: done)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if _is_torch_tensor(values):
        return _begin_torch(values, bins, max_elements)
    arr = _sample_numpy(np.asarray(values), max_elements).copy()
    return PendingHistogram(lambda: _numpy_histogram(arr, bins))


def range_edges(lo: float, hi: float, bins: int) -> npt.NDArray[np.float64]:
    """Equal-width float64 edges from `lo` to `hi`, exact at both ends, never overflowing.

    Equal to `np.linspace(lo, hi, bins + 1)` whenever `hi - lo` is finite.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(hi - lo):
            edges = np.linspace(lo, hi, bins + 1)
        else:  # powers of two scale exactly
            edges = np.linspace(lo * 0.5, hi * 0.5, bins + 1) * 2.0
    edges[0], edges[-1] = lo, hi
    return edges


def value_range(lo: float, hi: float) -> tuple[float, float]:
    """The binning range for finite values in [lo, hi]; widened when all values are equal.

    A constant value v gets v ± 0.5 (as numpy), or ± a relative 2**-40 once 0.5 would be
    lost in rounding, clamped to the float64 range.
    """
    if lo < hi:
        return lo, hi
    half = max(0.5, abs(lo) * 2.0**-40)
    return max(lo - half, -_FMAX), min(lo + half, _FMAX)


def _is_torch_tensor(values: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(values, torch.Tensor)


def _sample_numpy(arr: npt.NDArray[Any], max_elements: int | None) -> npt.NDArray[Any]:
    flat = arr.reshape(-1)
    if max_elements is not None and flat.size > max_elements > 0:
        flat = flat[:: -(-flat.size // max_elements)]
    return flat


def _as_float64(arr: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    if np.iscomplexobj(arr):
        raise ValueError(
            "cannot histogram complex values: pass values.real, values.imag or abs(values)"
        )
    if arr.dtype == object:
        arr = arr.astype(np.float64)
    return np.asarray(arr, dtype=np.float64).reshape(-1)


def _numpy_histogram(values: npt.NDArray[Any], bins: int) -> HistogramData:
    a = _as_float64(values)
    finite_mask = np.isfinite(a)
    if finite_mask.all():
        finite, n_nan, n_pos, n_neg = a, 0, 0, 0
    else:
        finite = a[finite_mask]
        n_nan = int(np.isnan(a).sum())
        n_pos = int(np.isposinf(a).sum())
        n_neg = int(a.size - finite.size - n_nan - n_pos)
    if finite.size == 0:
        return _empty(bins, n_nan, n_pos, n_neg)
    lo, hi = float(finite.min()), float(finite.max())
    edges = range_edges(*value_range(lo, hi), bins)
    with np.errstate(over="ignore", invalid="ignore"):
        width = float(edges[-1] - edges[0])
        if math.isfinite(width) and math.isfinite(bins / width):
            counts, _ = np.histogram(finite, bins=bins, range=(edges[0], edges[-1]))
        else:  # a range numpy's arithmetic cannot hold: bin by search instead
            idx = np.clip(np.searchsorted(edges, finite, side="right") - 1, 0, bins - 1)
            counts = np.bincount(idx, minlength=bins)
        total, total_sq = float(finite.sum()), float(np.dot(finite, finite))
    return HistogramData(
        edges=edges,
        counts=counts.astype(np.int64),
        count=int(finite.size),
        n_nan=n_nan,
        n_posinf=n_pos,
        n_neginf=n_neg,
        min=lo,
        max=hi,
        sum=total,
        sum_sq=total_sq,
    )


def _empty(bins: int, n_nan: int, n_pos: int, n_neg: int) -> HistogramData:
    return HistogramData(
        edges=np.linspace(-0.5, 0.5, bins + 1),
        counts=np.zeros(bins, dtype=np.int64),
        count=0,
        n_nan=n_nan,
        n_posinf=n_pos,
        n_neginf=n_neg,
        min=None,
        max=None,
        sum=0.0,
        sum_sq=0.0,
    )


def _begin_torch(t: Any, bins: int, max_elements: int | None) -> PendingHistogram:
    import torch

    if t.is_complex():
        raise ValueError("cannot histogram complex values: pass t.real, t.imag or t.abs()")
    x = t.detach()
    x = x.reshape(-1) if x.is_contiguous() else x.flatten()
    if max_elements is not None and x.numel() > max_elements > 0:
        x = x[:: -(-x.numel() // max_elements)]
    if x.device.type != "cpu":
        sketch = _reduce_on_device(x, bins)
        return PendingHistogram(lambda: _from_sketch(sketch.cpu().numpy(), bins))
    if x.dtype in (torch.float16, torch.bfloat16, torch.bool):
        snapshot = x.to(torch.float32)
    else:
        snapshot = x.clone()
    return PendingHistogram(lambda: _numpy_histogram(snapshot.numpy(), bins))


def _reduce_on_device(x: Any, bins: int) -> Any:
    """Reduce a flat tensor to one float64 sketch tensor on its own device, no host sync.

    Layout: edges [bins + 1], counts [bins], then the `_N_SCALARS` scalars. Counts agree
    with the edges exactly (values on an edge go right, the last bin is closed).
    """
    import torch

    dev = x.device
    xd = x.to(torch.float64)
    finite = torch.isfinite(xd)
    n = torch.tensor(float(x.numel()), dtype=torch.float64, device=dev)
    n_finite = finite.sum(dtype=torch.float64)
    n_nan = torch.isnan(xd).sum(dtype=torch.float64)
    n_pos = (xd == math.inf).sum(dtype=torch.float64)
    n_neg = n - n_finite - n_nan - n_pos
    if xd.numel() == 0:
        empty = torch.tensor([math.inf, -math.inf], dtype=torch.float64, device=dev)
        lo_raw, hi_raw = empty[0], empty[1]
    else:
        lo_raw = torch.where(finite, xd, math.inf).amin()
        hi_raw = torch.where(finite, xd, -math.inf).amax()
    has = n_finite > 0
    lo_v = torch.where(has, lo_raw, 0.0)
    hi_v = torch.where(has, hi_raw, 0.0)
    half = torch.clamp(lo_v.abs() * 2.0**-40, min=0.5)
    same = lo_v >= hi_v
    lo = torch.where(same, torch.clamp(lo_v - half, min=-_FMAX), lo_v)
    hi = torch.where(same, torch.clamp(lo_v + half, max=_FMAX), hi_v)
    # the same arithmetic as np.linspace (and `range_edges`), so edges agree to the bit
    ar = torch.arange(bins + 1, dtype=torch.float64, device=dev)
    wide = ~torch.isfinite(hi - lo)
    base = torch.where(wide, lo * 0.5, lo)
    delta = torch.where(wide, hi * 0.5 - lo * 0.5, hi - lo)
    step = delta / bins
    edges = torch.where(step == 0, ar / bins * delta, ar * step) + base
    edges = torch.where(wide, edges * 2.0, edges)
    edges[0], edges[-1] = lo, hi
    xs = torch.where(finite, xd, lo)
    idx = (torch.bucketize(xs, edges, right=True) - 1).clamp(0, bins - 1)
    idx = torch.where(finite, idx, bins)
    counts = torch.bincount(idx, minlength=bins + 1)[:bins].to(torch.float64)
    xf = torch.where(finite, xd, 0.0)
    scalars = torch.stack(
        [n_finite, n_nan, n_pos, n_neg, lo_raw, hi_raw, xf.sum(), (xf * xf).sum()]
    )
    return torch.cat([edges, counts, scalars])


def _from_sketch(sketch: npt.NDArray[np.float64], bins: int) -> HistogramData:
    edges, counts = sketch[: bins + 1], sketch[bins + 1 : 2 * bins + 1]
    n_finite, n_nan, n_pos, n_neg, lo, hi, total, total_sq = sketch[2 * bins + 1 :].tolist()
    if n_finite == 0:
        return _empty(bins, int(n_nan), int(n_pos), int(n_neg))
    return HistogramData(
        edges=edges.copy(),
        counts=counts.astype(np.int64),
        count=int(n_finite),
        n_nan=int(n_nan),
        n_posinf=int(n_pos),
        n_neginf=int(n_neg),
        min=float(lo),
        max=float(hi),
        sum=float(total),
        sum_sq=float(total_sq),
    )
