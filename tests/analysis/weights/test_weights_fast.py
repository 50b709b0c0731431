"""The float16 / bfloat16 statistics kernel (`_halfstats.c`, issue 15) equals numpy.

Each of its paths (AVX-512, AVX2, scalar) decodes every 16-bit pattern; these tests check
that against numpy's own float16 and a bf16 → float32 widening, pattern by pattern, the
paths against each other at every length around their vector widths, and the statistics
of files (several blocks, threads, NaN/Inf, ±0, subnormals, |mean| >> std) against numpy
and against the numpy path of the same code (DEEPSCOPE_NO_NATIVE=1).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from weights_reference import numpy_stats

import deepscope
from deepscope.analysis.weights import _fast, _stream

safetensors_numpy = pytest.importorskip("safetensors.numpy")


SMALL_BLOCKS = 1 << 20  # mapped blocks of 1 MB here: several per tensor


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stream, "MAP_BYTES", SMALL_BLOCKS)


def _check(got: dict[str, Any], want: dict[str, Any], scale: float) -> None:
    for k, v in want.items():
        # Σx of values of both signs: relative to the values' scale, not to a mean near 0
        tol = 1e-12 * scale if k == "mean" else 0.0
        assert got[k] == pytest.approx(v, rel=1e-9, abs=tol or 1e-300), k


@pytest.fixture
def numpy_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The same code with the kernel turned off (the BitHistogram / chunk_stats path)."""
    monkeypatch.setenv("DEEPSCOPE_NO_NATIVE", "1")
    _fast._loaded.clear()
    yield
    _fast._loaded.clear()


def _patterns(fmt: _fast.HalfFormat) -> tuple[np.ndarray, np.ndarray]:
    bits = np.arange(1 << 16, dtype=np.uint16)
    with np.errstate(invalid="ignore", over="ignore"):
        values = np.asarray(fmt.decode(bits), dtype=np.float64)
    return bits, values


def test_the_kernel_is_built_and_runs_here() -> None:
    """`make install` compiles it (hatch_build.py) wherever a C compiler is: a silent
    fallback to numpy would leave every other test here passing on the slow path."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler: the library is not built, numpy serves")
    assert _fast.LIBRARY.is_file()
    assert _fast.load(simd=False) is not None
    cpu = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").exists() else ""
    if " avx512bw" in cpu and " f16c" in cpu:
        assert _fast.path() == "avx512" and _fast.available()


PATHS = [
    "ds_half_moments",
    "ds_half_moments_avx512",
    "ds_half_moments_avx2",
    "ds_half_moments_scalar",
]


def _entry(entry: str) -> Any:
    """One of the kernel's paths, or a skip where this CPU cannot run it."""
    cpu = open("/proc/cpuinfo").read() if Path("/proc/cpuinfo").exists() else ""
    need = {"ds_half_moments_avx512": " avx512bw", "ds_half_moments_avx2": " avx2"}.get(entry)
    if need is not None and (need not in cpu or " f16c" not in cpu):
        pytest.skip(f"this CPU has no{need}")
    fn = _fast.load(simd=False, entry=entry)
    if fn is None:
        pytest.skip("the kernel's library is not built here")
    return fn


@pytest.mark.parametrize("entry", PATHS)
@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_every_pattern_decodes_exactly(name: str, entry: str) -> None:
    kernel = _entry(entry)
    fmt = _fast.HALF[name]
    bits, values = _patterns(fmt)
    finite = np.isfinite(values)
    rng = np.random.default_rng(0)
    # ±0, the subnormals' edges, the largest finite values, and a random sample
    special = [0, 0x8000, 1, 0x8001, 0x7FFF >> 1, (0x7C00 if name == "float16" else 0x7F80) - 1]
    pick = np.unique(np.concatenate([special, rng.choice(np.flatnonzero(finite), 3000)]))
    for p in pick.astype(np.uint16):
        r = _fast.half_stats(np.array([p], dtype=np.uint16), fmt, kernel).result()
        assert r["min"] == r["max"] == values[p], hex(p)
        assert r["zeros"] == float(values[p] == 0.0)
    # every finite pattern at once: min / max / zeros exact, sums to float64 rounding
    got = _fast.half_stats(bits[finite], fmt, kernel).result()
    _check(got, numpy_stats(values[finite]), float(np.abs(values[finite]).max()))
    # every pattern: NaN and Inf counted, never summed
    got = _fast.half_stats(bits, fmt, kernel).result()
    assert got["nan"] == int(np.isnan(values).sum()) and got["inf"] == 2
    _check(got, numpy_stats(values), float(np.abs(values[finite]).max()))


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    n_big = 3 * SMALL_BLOCKS // 2 + 12_345  # three blocks: threads, merged in order
    big = (rng.standard_normal(n_big) * 0.02).astype(np.float16)
    big[[5, 9, 11]] = np.array([0.0, -0.0, 3e-7], dtype=np.float16)  # ±0 and a subnormal
    bad = rng.standard_normal(200_000).astype(np.float16)
    bad[[10, 20, 30]] = [np.inf, -np.inf, np.nan]
    shifted = (rng.standard_normal(100_000) * 1e-3 + 1.0).astype(np.float16)  # |mean| >> std
    bf = rng.standard_normal(300_000).astype(np.float32) * 50
    bf[7] = np.nan
    bf_bits = (bf.view(np.uint32) >> 16).astype(np.uint16)  # truncation: a valid bf16
    return {"big": big, "bad": bad, "shifted": shifted, "bf": bf_bits}


def _write(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file of float16 and bfloat16 tensors; returns their values."""
    import torch
    from safetensors.torch import save_file

    t = _tensors()
    out = {k: torch.from_numpy(v) for k, v in t.items() if k != "bf"}
    out["bf"] = torch.from_numpy(t["bf"].view(np.int16)).view(torch.bfloat16)
    save_file(out, str(path))
    values = {k: v.astype(np.float64) for k, v in t.items() if k != "bf"}
    values["bf"] = np.asarray(_fast.HALF["bfloat16"].decode(t["bf"]), dtype=np.float64)
    return values


def test_file_statistics_equal_numpy_and_the_numpy_path(tmp_path: Path) -> None:
    path = tmp_path / "half.safetensors"
    values = _write(path)
    fast = deepscope.weights(path).stats()
    for name, v in values.items():
        assert fast[name]["dtype"] == ("bfloat16" if name == "bf" else "float16")
        _check(fast[name], numpy_stats(v), float(np.nanmax(np.abs(v[np.isfinite(v)]))))
    assert fast["bad"]["inf"] == 2 and fast["bad"]["nan"] == 1 and fast["bf"]["nan"] == 1
    zeros = round(fast["big"]["zeros"] * values["big"].size)
    assert zeros == int((values["big"] == 0).sum()) >= 2  # +0.0 and -0.0 both count
    assert fast["shifted"]["std"] == pytest.approx(values["shifted"].std(), rel=1e-9)


def test_the_numpy_path_gives_the_same_figures(tmp_path: Path, numpy_path: None) -> None:
    path = tmp_path / "half.safetensors"
    values = _write(path)
    assert not _fast.available()
    slow = deepscope.weights(path).stats()
    for name, v in values.items():
        _check(slow[name], numpy_stats(v), float(np.nanmax(np.abs(v[np.isfinite(v)]))))


def test_in_memory_float16_arrays_take_the_kernel_and_equal_numpy() -> None:
    from deepscope.analysis.weights.stats import tensor_stats

    rng = np.random.default_rng(3)
    a = (rng.standard_normal(1 << 20) * 0.05 - 0.01).astype(np.float16)
    a[[1, 2]] = [np.float16(-0.0), np.float16(6e-8)]
    got = tensor_stats(a.reshape(1024, 1024))
    _check(got, numpy_stats(a), float(np.abs(a.astype(np.float64)).max()))
    x = np.linspace(-1, 1, 5).astype(np.float16)
    assert tensor_stats(x)["mean"] == 0.0 and tensor_stats(x)["absmax"] == 1.0


@pytest.mark.parametrize("entry", PATHS[1:3])
@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_the_vector_paths_equal_the_scalar_one_at_every_length(name: str, entry: str) -> None:
    """Lengths around the vector widths (16, 32) and the counters' flush (32 × 2048), with
    the special patterns in the tails as well as in the vectors."""
    kernel, scalar = _entry(entry), _entry("ds_half_moments_scalar")
    fmt = _fast.HALF[name]
    rng = np.random.default_rng(7)
    inf = 0x7C00 if name == "float16" else 0x7F80
    special = np.array([0, 0x8000, 1, 0x8001, inf, inf | 0x8000, inf | 1, inf - 1], np.uint16)
    for n in [*range(1, 70), 511, 32 * 2048 - 1, 32 * 2048 + 33, 3 * 32 * 2048 + 17]:
        bits = rng.integers(0, 1 << 16, n, dtype=np.uint16)
        bits[rng.integers(0, n, min(n, 8))] = special[: min(n, 8)]
        bits[-1] = special[n % special.size]  # one in the tail
        want, got = _fast.half_stats(bits, fmt, scalar), _fast.half_stats(bits, fmt, kernel)
        assert (got.count, got.n_zero, got.n_nan, got.n_inf) == (
            want.count,
            want.n_zero,
            want.n_nan,
            want.n_inf,
        ), n
        assert (got.min, got.max) == (want.min, want.max), n
        if want.mean is not None:  # the sums' order differs: float64 rounding of Σ|x|
            with np.errstate(invalid="ignore"):
                v = np.asarray(fmt.decode(bits), np.float64)
            scale = float(np.abs(v[np.isfinite(v)]).max())
            assert got.mean == pytest.approx(want.mean, rel=1e-9, abs=1e-12 * scale), n
            assert got.sumsq == pytest.approx(want.sumsq, rel=1e-12), n


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_inf_and_nan_are_counted_and_left_out_in_the_kernel(name: str) -> None:
    if not _fast.available():
        pytest.skip("the kernel's library is not built here")
    fmt = _fast.HALF[name]
    inf = 0x7C00 if name == "float16" else 0x7F80
    nan = inf | 1
    bits = np.array([inf, inf | 0x8000, nan, nan | 0x8000, nan | 0x40], dtype=np.uint16)
    r = _fast.half_stats(bits, fmt).result()
    assert (r["count"], r["nan"], r["inf"], r["mean"], r["min"]) == (5, 3, 2, None, None)
    one = np.concatenate([bits, np.array([0x3C00 if name == "float16" else 0x3F80], np.uint16)])
    r = _fast.half_stats(one, fmt).result()  # 1.0 among them: the only finite value
    assert (r["mean"], r["std"], r["min"], r["max"], r["l2"]) == (1.0, 0.0, 1.0, 1.0, 1.0)


def _hook() -> Any:
    """The package's build hook module (hatch_build.py at the repository's root)."""
    pytest.importorskip("hatchling")
    import importlib.util

    root = Path(__file__).resolve().parents[3]
    spec = importlib.util.spec_from_file_location("hatch_build", root / "hatch_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(tmp_path: Path, hook: Any, source: str | None = None) -> Path:
    src = tmp_path / hook.NATIVE_SRC
    src.parent.mkdir(parents=True)
    src.write_text(source if source is not None else (_fast.LIBRARY.with_suffix(".c")).read_text())
    return tmp_path


def test_the_build_hook_builds_a_library_that_loads(tmp_path: Path) -> None:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    hook = _hook()
    root = _tree(tmp_path, hook)
    assert hook.build_native(root)
    lib = root / hook.NATIVE_LIB
    import ctypes

    assert ctypes.CDLL(str(lib)).ds_half_abi() == _fast.ABI
    built = lib.stat().st_mtime_ns
    assert hook.build_native(root) and lib.stat().st_mtime_ns == built  # up to date: kept


def test_without_a_working_compiler_the_build_says_so_and_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No compiler, or one that fails: the install carries on (numpy serves), says why,
    and leaves no half-written library behind."""
    hook = _hook()
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    root = _tree(tmp_path / "a", hook)
    assert hook.build_native(root) is False
    err = capsys.readouterr().err
    assert "no C compiler" in err and "not built" in err
    assert not (root / hook.NATIVE_LIB).exists()
    if shutil.which("cc") is None:
        return
    monkeypatch.setenv("CC", "cc")
    root = _tree(tmp_path / "b", hook, source="this is not C;\n")
    assert hook.build_native(root) is False
    err = capsys.readouterr().err
    assert "failed" in err and "error" in err and "not built" in err  # the compiler's words
    assert list((root / hook.NATIVE_LIB).parent.glob("*.so*")) == []
