"""Reductions that run where a tensor lives and return a small tensor on the same device.

Many summaries are concatenated and copied to the host in one go, so watching a model
costs at most one host synchronisation per logged step: on accelerators nothing here
calls `.item()` (branch-free, masked reductions). On the CPU, where reading a number back
is free, the usual all-finite case takes a fast path (min and max in one pass, sum and
sum of squares from BLAS, bins from one conversion and a `bincount`) and anything else
falls back to the masked reductions.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from deepscope._histdata import HistogramData

SUMMARY_SCALARS = 8  # count, n_nan, n_posinf, n_neginf, min, max, sum, sum_sq


def summary_size(bins: int) -> int:
    """Length of the vector `tensor_summary` returns."""
    return SUMMARY_SCALARS + bins


def _flat_float(t: torch.Tensor, max_elements: int | None) -> torch.Tensor:
    x = t.detach().reshape(-1)
    if max_elements is not None and x.numel() > max_elements:
        x = x[:: math.ceil(x.numel() / max_elements)]
    if not x.is_floating_point() or x.element_size() < 4:
        x = x.float()
    return x


class Scratch:
    """Work buffers reused across `tensor_summary` calls on the CPU: writing into warm
    memory instead of a fresh allocation per tensor saves the page faults, which cost
    more than the arithmetic. Holds about 5 bytes per value of the largest tensor seen."""

    def __init__(self) -> None:
        self._floats: dict[torch.dtype, torch.Tensor] = {}
        self._bytes: torch.Tensor | None = None

    def floats(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        buf = self._floats.get(dtype)
        if buf is None or buf.numel() < n:
            buf = self._floats[dtype] = torch.empty(n, dtype=dtype)
        return buf[:n]

    def bytes(self, n: int) -> torch.Tensor:
        if self._bytes is None or self._bytes.numel() < n:
            self._bytes = torch.empty(n, dtype=torch.uint8)
        return self._bytes[:n]


def tensor_summary(
    t: torch.Tensor,
    bins: int = 64,
    *,
    max_elements: int | None = None,
    scratch: Scratch | None = None,
) -> torch.Tensor:
    """Histogram sketch of `t` as one float64 vector on `t.device` (see `decode_summary`).

    Finite values are binned between their min and max; NaN and ±Inf are counted apart.
    """
    x = _flat_float(t, max_elements)
    if x.device.type == "cpu":
        fast = _finite_summary_cpu(x, bins, scratch or Scratch())
        if fast is not None:
            return fast
    return _masked_summary(x, bins)


def _finite_sums(x: torch.Tensor) -> tuple[float, float]:
    """Sum and sum of squares of a flat CPU tensor, in float64 when float32 overflows."""
    total, total_sq = float(x.sum()), float(torch.dot(x, x))
    if not (math.isfinite(total) and math.isfinite(total_sq)):
        x64 = x.double()
        total, total_sq = float(x64.sum()), float(torch.dot(x64, x64))
    return total, total_sq


def _finite_summary_cpu(x: torch.Tensor, bins: int, scratch: Scratch) -> torch.Tensor | None:
    """`tensor_summary` of a flat CPU tensor whose values are all finite, else None."""
    n = x.numel()
    if n == 0:
        return None
    if n <= SMALL:
        return _finite_summary_small(x.numpy(), bins)
    lo_t, hi_t = torch.aminmax(x)
    lo, hi = float(lo_t), float(hi_t)
    width = hi - lo
    if not (math.isfinite(lo) and math.isfinite(hi) and width < 1e38):
        return None  # NaN/Inf (min/max propagate them), or a range x - lo could overflow
    out = np.zeros(SUMMARY_SCALARS + bins, dtype=np.float64)  # assembled on the host
    counts = out[SUMMARY_SCALARS:]
    if width == 0:  # one value: the middle bin of [lo - 0.5, lo + 0.5]
        counts[min(int(0.5 * bins), bins - 1)] = n
    else:
        scale = bins / width
        pos = scratch.floats(n, x.dtype)
        if max(abs(lo), abs(hi)) * scale < 1e37:  # one fused pass: scale * x - lo * scale
            # (x = lo may land a rounding error below 0: the byte cast truncates it to 0)
            torch.add(torch.tensor(-lo * scale), x, alpha=scale, out=pos)
        else:
            torch.sub(x, lo, out=pos).mul_(scale)  # x >= lo exactly, so pos >= 0
        if bins <= 250:  # a byte index makes bincount fast; rounding may reach bins + 1
            idx = scratch.bytes(n).copy_(pos)
        else:
            idx = pos.to(torch.int64)
        raw = torch.bincount(idx, minlength=bins + 2).numpy()
        counts[:] = raw[:bins]
        counts[bins - 1] += raw[bins:].sum()
    out[0], out[4], out[5] = n, lo, hi
    out[6], out[7] = _finite_sums(x)
    return torch.from_numpy(out)


SMALL = 16384  # below this, numpy's per-call cost beats a dozen torch op dispatches


def _finite_summary_small(x: np.ndarray, bins: int) -> torch.Tensor | None:
    """`_finite_summary_cpu` for a small array, in float64 numpy (biases, norm scales)."""
    a = x.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    width = hi - lo
    if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(width)):
        return None
    out = np.zeros(SUMMARY_SCALARS + bins, dtype=np.float64)
    if width == 0:
        out[SUMMARY_SCALARS + min(int(0.5 * bins), bins - 1)] = a.size
    else:
        idx = ((a - lo) * (bins / width)).astype(np.intp)
        np.minimum(idx, bins - 1, out=idx)
        out[SUMMARY_SCALARS:] = np.bincount(idx, minlength=bins)
    out[0], out[4], out[5], out[6], out[7] = a.size, lo, hi, a.sum(), np.dot(a, a)
    return torch.from_numpy(out)


def _masked_summary(x: torch.Tensor, bins: int) -> torch.Tensor:
    """`tensor_summary` without data-dependent branches (no host sync), any values."""
    finite = torch.isfinite(x)
    n_nan = torch.isnan(x).sum()
    n_posinf = (x == math.inf).sum()
    n_neginf = (x == -math.inf).sum()
    count = finite.sum()
    lo = torch.where(finite, x, math.inf).min() if x.numel() else x.new_tensor(math.inf)
    hi = torch.where(finite, x, -math.inf).max() if x.numel() else x.new_tensor(-math.inf)
    x64 = torch.where(finite, x, 0.0).double()
    total = x64.sum()
    total_sq = (x64 * x64).sum()
    any_finite = count > 0
    lo_safe = torch.where(any_finite, lo, 0.0).double()
    hi_safe = torch.where(any_finite, hi, 0.0).double()
    width = hi_safe - lo_safe
    flat = width == 0
    lo_b = torch.where(flat, lo_safe - 0.5, lo_safe)
    width = torch.where(flat, torch.ones_like(width), width)
    pos = ((x.double() - lo_b) / width * bins).floor().clamp_(0, bins - 1)
    pos = torch.where(flat, float(min(int(0.5 * bins), bins - 1)), pos)  # one value: middle
    idx = torch.where(finite, pos, float(bins)).long()
    counts = torch.bincount(idx, minlength=bins + 1)[:bins].double()
    head = torch.stack(
        [
            count.double(),
            n_nan.double(),
            n_posinf.double(),
            n_neginf.double(),
            lo.double(),
            hi.double(),
            total,
            total_sq,
        ]
    )
    return torch.cat([head, counts])


def decode_summary(row: np.ndarray, bins: int) -> HistogramData:
    """Turn one host copy of a `tensor_summary` vector into a `HistogramData`."""
    count, n_nan, n_posinf, n_neginf = (int(v) for v in row[:4])
    lo, hi, total, total_sq = (float(v) for v in row[4:8])
    counts = row[SUMMARY_SCALARS : SUMMARY_SCALARS + bins].astype(np.int64)
    if count == 0:
        edges = np.linspace(-0.5, 0.5, bins + 1)
        return HistogramData(edges, counts, 0, n_nan, n_posinf, n_neginf, None, None, 0.0, 0.0)
    a, b = (lo - 0.5, lo + 0.5) if hi == lo else (lo, hi)
    edges = a + (b - a) * np.arange(bins + 1, dtype=np.float64) / bins
    return HistogramData(edges, counts, count, n_nan, n_posinf, n_neginf, lo, hi, total, total_sq)


ACT_FIELDS = ("count", "mean", "std", "zero_frac", "sat_frac", "dead_frac", "nonfinite")


def activation_stats(
    out: torch.Tensor, kind: str | None, *, scratch: Scratch | None = None
) -> torch.Tensor:
    """[count, mean, std, zero fraction, saturated fraction, dead-unit fraction, non-finite
    flag] of a module output as a float64 vector on its device.

    `kind` is "relu" (zero and dead-unit fractions are measured: a unit is a channel —
    dim 1 of N×C×…, the last dim of N×C — and is dead when it is exactly zero for every
    input in the batch), "tanh" (saturated: |y| > 0.99), "sigmoid" (y < 0.01 or y > 0.99)
    or None (mean and std only). Few passes over the tensor: this runs inside forward.
    """
    x = out.detach()
    if not x.is_floating_point() or x.element_size() < 4:
        x = x.float()
    n = x.numel()
    if x.device.type == "cpu" and n:
        fast = _activation_stats_cpu(x, kind, scratch or Scratch())
        if fast is not None:
            return fast
    zero = torch.zeros((), dtype=torch.float64, device=x.device)
    if n == 0:
        nan = torch.full((), math.nan, dtype=torch.float64, device=x.device)
        return torch.stack([zero, nan, nan, nan, nan, nan, zero])
    var, mean = torch.var_mean(x, correction=0)
    nonfinite = (~torch.isfinite(mean)).double()
    zero_frac = dead_frac = sat_frac = zero
    if kind == "relu":
        zero_frac = (x == 0).sum(dtype=torch.float64) / n
        if x.dim() >= 3:
            peak = x.abs().amax(dim=[d for d in range(x.dim()) if d != 1])
        elif x.dim() == 2:
            peak = x.abs().amax(dim=0)
        else:
            peak = x.abs().amax().reshape(1)
        dead_frac = (peak == 0).double().mean()
    elif kind == "tanh":
        sat_frac = (x.abs() > 0.99).sum(dtype=torch.float64) / n
    elif kind == "sigmoid":
        sat_frac = ((x < 0.01) | (x > 0.99)).sum(dtype=torch.float64) / n
    count = torch.full((), float(n), dtype=torch.float64, device=x.device)
    return torch.stack(
        [count, mean.double(), var.double().sqrt(), zero_frac, sat_frac, dead_frac, nonfinite]
    )


def _activation_stats_cpu(
    x: torch.Tensor, kind: str | None, scratch: Scratch
) -> torch.Tensor | None:
    """`activation_stats` of a non-empty CPU tensor with a finite sum, else None."""
    n = x.numel()
    flat = x.reshape(-1)
    total, total_sq = _finite_sums(flat)
    if not math.isfinite(total):
        return None
    mean = total / n
    var = total_sq / n - mean * mean
    if var <= 1e-4 * mean * mean:  # E[x^2] - mean^2 cancels: two passes instead
        var = float(torch.linalg.vector_norm(flat - mean, dtype=torch.float64)) ** 2 / n
    zero_frac = dead_frac = sat_frac = 0.0
    if kind == "relu":  # outputs are >= 0 (or NaN, which the sum above turned away)
        # sign() is 0 or 1 here, and its sum vectorises far better than count_nonzero
        signs = torch.sign(flat, out=scratch.floats(n, flat.dtype))
        zero_frac = (n - float(signs.sum())) / n
        if x.dim() >= 3:
            peak = x.amax(dim=[d for d in range(x.dim()) if d != 1])
        elif x.dim() == 2:
            peak = x.amax(dim=0)
        else:
            peak = x.amax().reshape(1)
        dead_frac = float((peak == 0).double().mean())
    elif kind == "tanh":
        sat_frac = int(((flat > 0.99) | (flat < -0.99)).sum()) / n
    elif kind == "sigmoid":
        sat_frac = int(((flat < 0.01) | (flat > 0.99)).sum()) / n
    values = [float(n), mean, math.sqrt(max(var, 0.0)), zero_frac, sat_frac, dead_frac, 0.0]
    return torch.tensor(values, dtype=torch.float64)
