"""Statistics of 16-bit float tensors (float16, bfloat16) in one fused pass, when numba is
installed (it comes with the `[umap]` extra; nothing here is needed without it).

numpy makes one pass over memory per operation: counting the 65,536 bit patterns
(`stats.BitHistogram`) costs ~1.3 ns per element on this project's machines, while a
disk serves a cold file at ~0.4-1 ns per 2-byte element. This kernel reads each element
once: its bits are moved into the fields of a float64 (sign-extend the int16, shift the
10 (float16) or 7 (bfloat16) mantissa bits to where float64's 52 end, keep the sign and
the 15 magnitude bits, scale by 2**(1023 - bias)), which gives every finite value
exactly, subnormals and ±0 included; and it sums, squares, takes min/max and counts
zeros in the same loop. A pattern with the exponent all ones is Inf (mantissa 0) or NaN:
the kernel counts them and masks them out of the sums and of min/max (branch-free, so
the loop stays vectorised).

The loop runs with `fastmath` (the sums are split over SIMD lanes): every value it adds
is finite by construction (a masked Inf / NaN adds 0), and a chunk's Σx carries a
relative error of the order of sqrt(chunk / lanes) units of 2**-53 of Σ|x| (like numpy's
pairwise sum), far inside the tests' 1e-9. Compiled code is cached on disk (numba's cache), so only the first run on a
machine compiles (about a second). ``DEEPSCOPE_NO_NUMBA=1`` turns this path off.

Example (with numba installed):
    >>> import numpy as np
    >>> x = np.array([0.5, -2.0, 0.0, 1.0], dtype=np.float16)
    >>> fmt = HALF["float16"]
    >>> acc = half_stats(x.view(np.uint16), fmt) if available() else None
    >>> acc is None or (acc.result()["mean"], acc.result()["zeros"]) == (-0.125, 0.25)
    True
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.analysis.weights.stats import CHUNK, StatsAccumulator

__all__ = [
    "FAST_CHUNK",
    "HALF",
    "HalfFormat",
    "available",
    "half_format",
    "half_stats",
    "warm",
]

#: Elements per inner pass of the kernel (512 KB of float64 scratch, in the CPU cache).
FAST_CHUNK = 1 << 16


@dataclass(frozen=True)
class HalfFormat:
    """Where a 16-bit float's fields go in a float64."""

    name: str
    mantissa: int  # mantissa bits
    bias: int  # exponent bias
    exponent: int  # exponent bits

    @property
    def shift(self) -> int:
        return 52 - self.mantissa

    @property
    def mask(self) -> int:
        """Sign bit and the 15 magnitude bits, as a signed int64."""
        bits = (1 << 63) | (0x7FFF << self.shift)
        return int(np.array([bits], dtype=np.uint64).view(np.int64)[0])

    @property
    def scale(self) -> float:
        return float(2.0 ** (1023 - self.bias))

    def decode(self, bits: NDArray[Any]) -> NDArray[Any]:
        """Numbers numpy computes with (float16 itself, bfloat16 widened to float32)."""
        u = np.ascontiguousarray(bits).view(np.uint16)
        if self.name == "float16":
            return u.view(np.float16)
        return (u.astype(np.uint32) << 16).view(np.float32)


HALF = {
    "float16": HalfFormat("float16", 10, 15, 5),
    "bfloat16": HalfFormat("bfloat16", 7, 127, 8),
}


def half_format(dtype: str, stored: np.dtype[Any]) -> HalfFormat | None:
    """The format of a tensor of `dtype` ("float16", "bfloat16") whose bits are stored as
    `stored`, when the fused kernel can read it (numba importable, 2-byte native order)."""
    fmt = HALF.get(dtype)
    s = np.dtype(stored)
    if fmt is None or s.itemsize != 2 or not s.isnative or not available():
        return None
    return fmt


_lock = threading.Lock()
_kernel: list[Callable[..., Any] | None] = []


def available() -> bool:
    """Whether the fused kernel runs here (numba imports, not turned off)."""
    return _get() is not None


def warm() -> None:
    """Import numba and load the kernel for the arrays a file gives (read-only int16), so
    that the first block does not pay it (~0.4 s); run on a thread while the disk reads."""
    if _get() is None:
        return
    probe = np.zeros(8, dtype=np.int16)
    probe.flags.writeable = False
    try:
        half_stats(probe, HALF["float16"])
    except Exception as e:  # a numba that cannot compile this: the numpy path serves
        warnings.warn(
            f"deepscope: numba's statistics kernel failed ({e}); using numpy", stacklevel=2
        )
        with _lock:
            _kernel[:] = [None]


def _get() -> Callable[..., Any] | None:
    with _lock:
        if not _kernel:
            _kernel.append(_compile() if not os.environ.get("DEEPSCOPE_NO_NUMBA") else None)
        return _kernel[0]


def _compile() -> Callable[..., Any] | None:
    try:
        import numba
    except Exception:  # not installed, or broken: the numpy path serves
        return None
    try:
        return _define(numba, cache=True)
    except Exception:  # no writable cache location: compile in memory each process
        return _define(numba, cache=False)


def _define(numba: Any, cache: bool) -> Callable[..., Any]:
    @numba.njit(cache=cache, nogil=True, fastmath=True, boundscheck=False)  # type: ignore[untyped-decorator]
    def moments(
        v: Any, shift: int, mask: int, scale: float, expmask: int, work: Any, out: Any
    ) -> None:
        """out = [Σx, Σx², min key, max key, zeros, Inf+NaN, NaN] of int16 bits `v`,
        `work.size` elements at a time (integers first, then the float sums). An Inf or
        NaN pattern adds 0 to the sums and leaves min / max alone (branch-free selects)."""
        lo = np.int32(32767)
        hi = np.int32(-32768)
        zeros = np.int64(0)
        bad = np.int64(0)
        nans = np.int64(0)
        s = 0.0
        q = 0.0
        step = work.size
        mantmask = np.int32(0x7FFF & ~expmask)
        for start in range(0, v.size, step):
            stop = min(v.size, start + step)
            n = stop - start
            part = v[start:stop]
            z = np.int32(0)
            b = np.int32(0)
            nn = np.int32(0)
            for j in range(n):
                w = np.int32(part[j])
                isbad = np.int32((w & expmask) == expmask)
                keep = np.int64(isbad) - 1  # all ones for a finite value, 0 for Inf / NaN
                work[j] = ((np.int64(w) << shift) & mask) & keep
                key = w ^ ((w >> 15) & 0x7FFF)  # ordered like the values
                lo = min(lo, key + isbad * (32767 - key))
                hi = max(hi, key + isbad * (-32768 - key))
                z += np.int32((w & 0x7FFF) == 0)
                b += isbad
                nn += isbad & np.int32((w & mantmask) != 0)
            zeros += z
            bad += b
            nans += nn
            f = work[:n].view(np.float64)
            cs = 0.0
            cq = 0.0
            for j in range(n):
                x = f[j] * scale
                cs += x
                cq += x * x
            s += cs
            q += cq
        out[0] = s
        out[1] = q
        out[2] = lo
        out[3] = hi
        out[4] = zeros
        out[5] = bad
        out[6] = nans

    return moments  # type: ignore[no-any-return]


class _Work(threading.local):
    """One thread's scratch for the kernel (reused: no allocation per call)."""

    bits: NDArray[np.int64] | None = None
    out: NDArray[np.float64] | None = None


_work = _Work()


def half_stats(bits: NDArray[Any], fmt: HalfFormat) -> StatsAccumulator:
    """The statistics of stored 16-bit patterns (any 2-byte dtype, any shape) in one kernel
    call. Needs `available()`."""
    kernel = _get()
    assert kernel is not None, "half_stats needs numba (check available() first)"
    flat = np.ascontiguousarray(bits).reshape(-1).view(np.int16)
    part = StatsAccumulator()
    n = int(flat.size)
    if n == 0:
        return part
    if _work.bits is None or _work.out is None:
        _work.bits = np.empty(FAST_CHUNK, dtype=np.int64)
        _work.out = np.empty(7, dtype=np.float64)
    out = _work.out
    expmask = ((1 << fmt.exponent) - 1) << fmt.mantissa
    kernel(flat, fmt.shift, fmt.mask, fmt.scale, expmask, _work.bits, out)
    bad, nans = int(out[5]), int(out[6])
    part.count = n
    part.n_zero = int(out[4])
    part.n_nan, part.n_inf = nans, bad - nans
    finite = n - bad
    if finite == 0:
        return part
    part.finite = finite
    total, sumsq = float(out[0]), float(out[1])
    part.min, part.max = _value(int(out[2]), fmt), _value(int(out[3]), fmt)
    part.mean = total / finite
    m2 = sumsq - total * part.mean
    if m2 <= 1e-3 * sumsq:  # |mean| >> std: cancellation; the exact two-pass sum instead
        m2 = 0.0
        for lo in range(0, n, CHUNK):
            x = np.asarray(fmt.decode(flat[lo : lo + CHUNK]), dtype=np.float64)
            if bad:
                x = x[np.isfinite(x)]
            x -= part.mean
            m2 += float(np.einsum("i,i->", x, x))
    part.m2 = max(m2, 0.0)
    part.sumsq = sumsq
    return part


def _value(key: int, fmt: HalfFormat) -> float:
    """The number whose ordered key (see the kernel) is `key`."""
    bits = key ^ ((key >> 15) & 0x7FFF)
    return float(fmt.decode(np.array([bits], dtype=np.int16))[0])
