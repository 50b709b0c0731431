"""Statistics of 16-bit float tensors (float16, bfloat16) in one fused pass, through the
C kernel `_halfstats.c` (built into `_halfstats.so` when the package is installed; see
hatch_build.py). Without it, or on a CPU where only its scalar path would run, the numpy
path (`stats.BitHistogram`) serves: nothing here is required.

numpy makes one pass over memory per operation: counting the 65,536 bit patterns costs
~1.3 ns per element on this project's machines, while a warm page cache hands them over
at ~0.07 ns and a disk at ~0.3-1 ns. The kernel reads each element once: it decodes every
finite pattern exactly (float16 through the CPU's F16C conversion, bfloat16 as the top
half of a float32), sums x and x² in float64, takes min / max of an order-preserving
integer key, and counts zeros, Inf and NaN, which it leaves out of the sums and of min /
max. AVX-512: ~0.10 ns per element; AVX2: ~0.20 ns (picked at run time by the CPU).
The library is loaded with ctypes, which lets go of the GIL during each call, so the
stream's worker threads count blocks in parallel. ``DEEPSCOPE_NO_NATIVE=1`` turns it off.

Example:
    >>> import numpy as np
    >>> x = np.array([0.5, -2.0, 0.0, 1.0], dtype=np.float16)
    >>> fmt = HALF["float16"]
    >>> acc = half_stats(x.view(np.uint16), fmt) if available() else None
    >>> acc is None or (acc.result()["mean"], acc.result()["zeros"]) == (-0.125, 0.25)
    True
"""

from __future__ import annotations

import ctypes
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.analysis.weights.stats import CHUNK, StatsAccumulator

__all__ = [
    "HALF",
    "LIBRARY",
    "HalfFormat",
    "available",
    "half_format",
    "half_stats",
    "path",
    "warm",
]

#: The compiled kernel, next to this file (built by hatch_build.py from _halfstats.c).
LIBRARY = Path(__file__).with_name("_halfstats.so")
#: The kernel's interface version this module speaks (`ds_half_abi()` in _halfstats.c).
ABI = 1


@dataclass(frozen=True)
class HalfFormat:
    """A 16-bit float format ("float16" or "bfloat16")."""

    name: str

    def decode(self, bits: NDArray[Any]) -> NDArray[Any]:
        """Numbers numpy computes with (float16 itself, bfloat16 widened to float32)."""
        u = np.ascontiguousarray(bits).view(np.uint16)
        if self.name == "float16":
            return u.view(np.float16)
        return (u.astype(np.uint32) << 16).view(np.float32)


HALF = {
    "float16": HalfFormat("float16"),
    "bfloat16": HalfFormat("bfloat16"),
}


def half_format(dtype: str, stored: np.dtype[Any]) -> HalfFormat | None:
    """The format of a tensor of `dtype` ("float16", "bfloat16") whose bits are stored as
    `stored`, when the kernel can read it (the library loads, 2-byte native order)."""
    fmt = HALF.get(dtype)
    s = np.dtype(stored)
    if fmt is None or s.itemsize != 2 or not s.isnative or not available():
        return None
    return fmt


_lock = threading.Lock()
_loaded: list[Any] = []  # [the kernel function or None], once loaded


def available() -> bool:
    """Whether the kernel runs here (built, loads, a SIMD path on this CPU, not turned off)."""
    return _get() is not None


def path() -> str:
    """The kernel's path on this CPU: "avx512", "avx2", or "numpy" (the kernel unused)."""
    if _get() is None:
        return "numpy"
    lib = ctypes.CDLL(str(LIBRARY))
    lib.ds_half_path.restype = ctypes.c_char_p
    return str(lib.ds_half_path().decode())


def warm() -> None:
    """Load the library now (a millisecond), not in the first worker."""
    _get()


def _get() -> Any:
    with _lock:
        if not _loaded:
            _loaded.append(None if os.environ.get("DEEPSCOPE_NO_NATIVE") else load(simd=True))
        return _loaded[0]


def load(simd: bool, entry: str = "ds_half_moments") -> Any:
    """The library's `entry` function (``ds_half_moments`` or one path's, e.g.
    ``ds_half_moments_scalar``), or None when the library is missing, fails to load, speaks
    another ABI, or (`simd`) has only its scalar path on this CPU (numpy is as fast)."""
    if not LIBRARY.is_file():
        return None
    try:
        lib = ctypes.CDLL(str(LIBRARY))
        if lib.ds_half_abi() != ABI:  # a library left by an older build
            return None
        lib.ds_half_path.restype = ctypes.c_char_p
        if simd and lib.ds_half_path() == b"scalar":
            return None
        fn = getattr(lib, entry)
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p]
    fn.restype = None
    return fn


class _Out(threading.local):
    """One thread's accumulator for the kernel (reused: no allocation per call)."""

    out: NDArray[np.float64] | None = None


_out = _Out()
#: The accumulator's start: Σx, Σx², min key, max key, zeros, Inf + NaN, NaN.
_START = np.array([0.0, 0.0, 32767.0, -32768.0, 0.0, 0.0, 0.0])


def half_stats(bits: NDArray[Any], fmt: HalfFormat, kernel: Any = None) -> StatsAccumulator:
    """The statistics of stored 16-bit patterns (any 2-byte dtype, any shape) in one kernel
    call (`kernel`: one of `load`'s functions; by default the one `available()` found)."""
    kernel = kernel if kernel is not None else _get()
    assert kernel is not None, "half_stats needs the kernel (check available() first)"
    flat = np.ascontiguousarray(bits).reshape(-1).view(np.int16)
    part = StatsAccumulator()
    n = int(flat.size)
    if n == 0:
        return part
    if _out.out is None:
        _out.out = np.empty(7, dtype=np.float64)
    out = _out.out
    out[:] = _START
    kernel(flat.ctypes.data, n, int(fmt.name == "bfloat16"), out.ctypes.data)
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
            with np.errstate(invalid="ignore"):  # NaN patterns: dropped just below
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
