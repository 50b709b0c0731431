"""compute_histogram: exact against numpy/torch, safe on every non-finite or degenerate input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from deepscope.tracking.histogram import (
    HistogramData,
    _from_sketch,
    _reduce_on_device,
    begin_histogram,
    compute_histogram,
)

NAN, INF = math.nan, math.inf


def _check_invariants(h: HistogramData, n_total: int, bins: int) -> None:
    assert h.edges.dtype == np.float64 and h.edges.shape == (bins + 1,)
    assert h.counts.dtype == np.int64 and h.counts.shape == (bins,)
    assert np.all(np.isfinite(h.edges)) and np.all(np.diff(h.edges) >= 0)
    assert int(h.counts.sum()) == h.count
    assert h.total == n_total
    if h.count:
        assert h.min is not None and h.max is not None
        assert h.edges[0] <= h.min <= h.max <= h.edges[-1]
    else:
        assert h.min is None and h.max is None


def test_counts_and_edges_equal_numpy_histogram() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(size=10_000) * 3 + 1
    h = compute_histogram(data, bins=50)
    counts, edges = np.histogram(data, bins=50)
    np.testing.assert_array_equal(h.counts, counts)
    np.testing.assert_allclose(h.edges, edges, rtol=0, atol=1e-12)
    assert h.count == 10_000 and (h.n_nan, h.n_posinf, h.n_neginf) == (0, 0, 0)
    assert h.min == data.min() and h.max == data.max()
    assert h.sum == pytest.approx(data.sum()) and h.sum_sq == pytest.approx((data**2).sum())


def test_torch_float32_tensor_matches_torch_histc() -> None:
    torch.manual_seed(0)
    t = torch.randn(5000) * 2
    h = compute_histogram(t, bins=32)
    expected = torch.histc(t, bins=32, min=float(t.min()), max=float(t.max()))
    # histc bins in float32, we bin in float64: values on a bin edge may move by one bin
    assert np.abs(h.counts - expected.numpy().astype(np.int64)).sum() <= 4
    assert h.count == 5000
    np.testing.assert_array_equal(h.counts, np.histogram(t.double().numpy(), bins=32)[0])


@pytest.mark.parametrize(
    ("values", "count", "n_nan", "n_pos", "n_neg"),
    [
        ([NAN] * 7, 0, 7, 0, 0),
        ([1.0, NAN, 2.0], 2, 1, 0, 0),
        ([1.0, INF], 1, 0, 1, 0),
        ([-INF, 0.0, INF, NAN], 1, 1, 1, 1),
        ([-1e308, 1e308], 2, 0, 0, 0),
        ([-1.7976931348623157e308, 1.7976931348623157e308, 0.0], 3, 0, 0, 0),
        ([5.0, 5.0, 5.0], 3, 0, 0, 0),
        ([1e308, 1e308], 2, 0, 0, 0),
        ([3.0], 1, 0, 0, 0),
        ([], 0, 0, 0, 0),
        ([1e-320, 2e-320, 0.0], 3, 0, 0, 0),
    ],
)
@pytest.mark.parametrize("kind", ["list", "numpy", "torch", "device-path"])
def test_never_raises_and_counts_non_finite_exactly(
    values: list[float], count: int, n_nan: int, n_pos: int, n_neg: int, kind: str
) -> None:
    bins = 8
    arr = np.asarray(values, dtype=np.float64)
    if kind == "list":
        h = compute_histogram(values, bins=bins)
    elif kind == "numpy":
        h = compute_histogram(arr, bins=bins)
    elif kind == "torch":
        h = compute_histogram(torch.from_numpy(arr), bins=bins)
    else:
        h = _from_sketch(_reduce_on_device(torch.from_numpy(arr), bins).numpy(), bins)
    _check_invariants(h, len(values), bins)
    assert (h.count, h.n_nan, h.n_posinf, h.n_neginf) == (count, n_nan, n_pos, n_neg)
    finite = arr[np.isfinite(arr)]
    if finite.size:
        assert h.min == finite.min() and h.max == finite.max()
        with np.errstate(over="ignore"):
            assert h.sum == pytest.approx(finite.sum())


def test_constant_values_get_a_symmetric_range_around_the_value() -> None:
    h = compute_histogram(np.full(10, 2.5), bins=4)
    assert h.edges[0] == 2.0 and h.edges[-1] == 3.0 and h.count == 10
    big = compute_histogram([1e20, 1e20], bins=4)
    assert big.edges[0] < 1e20 < big.edges[-1]
    assert (big.edges[0] + big.edges[-1]) / 2 == pytest.approx(1e20)


def test_fp16_overflow_to_inf_is_counted_not_binned() -> None:
    t = torch.tensor([70000.0, 1.0, 2.0, -70000.0]).to(torch.float16)
    assert torch.isinf(t).sum() == 2
    h = compute_histogram(t, bins=4)
    assert (h.count, h.n_posinf, h.n_neginf) == (2, 1, 1)
    assert (h.min, h.max) == (1.0, 2.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_tensors_bin_their_exact_values(dtype: torch.dtype) -> None:
    torch.manual_seed(1)
    t = (torch.randn(2000) * 4).to(dtype)
    exact = t.double().numpy()
    h = compute_histogram(t, bins=16)
    np.testing.assert_array_equal(h.counts, np.histogram(exact, bins=16)[0])
    assert h.min == exact.min() and h.max == exact.max()


@pytest.mark.parametrize(
    "t",
    [
        torch.tensor([True, False, True]),
        torch.arange(-5, 20, dtype=torch.int64),
        torch.arange(0, 200, dtype=torch.uint8),
    ],
)
def test_integer_and_bool_tensors(t: torch.Tensor) -> None:
    h = compute_histogram(t, bins=5)
    expected = np.histogram(t.double().numpy(), bins=5)[0]
    np.testing.assert_array_equal(h.counts, expected)


@pytest.mark.parametrize("shape", [(0,), (3, 0, 5), ()])
def test_empty_and_zero_dim_tensors(shape: tuple[int, ...]) -> None:
    t = torch.full(shape, 4.0)
    h = compute_histogram(t, bins=3)
    _check_invariants(h, t.numel(), 3)
    assert h.count == t.numel()


def test_python_scalar_and_numpy_scalar() -> None:
    assert compute_histogram(3.0).count == 1
    assert compute_histogram(np.float32(-2)).min == -2.0


def test_complex_values_raise_with_advice() -> None:
    with pytest.raises(ValueError, match="abs"):
        compute_histogram(torch.ones(3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="abs"):
        compute_histogram(np.ones(3, dtype=np.complex128))


def test_histogram_data_passes_through_unchanged() -> None:
    h = compute_histogram([1.0, 2.0])
    assert compute_histogram(h) is h


def test_begin_snapshots_a_cpu_tensor_so_later_changes_do_not_leak_in() -> None:
    t = torch.zeros(100)
    pending = begin_histogram(t, bins=4)
    t.fill_(NAN)
    h = pending.result()
    assert h.count == 100 and h.n_nan == 0 and h.max == 0.0


def test_max_elements_bins_an_evenly_strided_sample() -> None:
    t = torch.arange(1_000_000, dtype=torch.float32)
    h = compute_histogram(t, bins=10, max_elements=1000)
    assert 500 <= h.count <= 1000
    assert h.min == 0.0 and h.max is not None and h.max >= 999_000.0
    assert h.counts.max() - h.counts.min() <= 1  # uniform data, uniform sample


def test_device_reduction_copies_only_the_sketch_to_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """N4, CPU variant: the one host copy on the device path is the sketch, never the data."""
    copied: list[int] = []
    real_cpu, real_numpy = torch.Tensor.cpu, torch.Tensor.numpy

    def spy_cpu(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        copied.append(self.numel())
        return real_cpu(self, *args, **kwargs)

    def spy_numpy(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        copied.append(self.numel())
        return real_numpy(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", spy_cpu)
    monkeypatch.setattr(torch.Tensor, "numpy", spy_numpy)
    t = torch.randn(1 << 20)
    t[::1000] = NAN
    bins = 64
    sketch = _reduce_on_device(t, bins)
    h = _from_sketch(sketch.cpu().numpy(), bins)
    assert copied and max(copied) <= 2 * bins + 1 + 8
    assert h.n_nan == t.isnan().sum().item() and h.count == (1 << 20) - h.n_nan


def test_device_path_agrees_with_numpy_path() -> None:
    rng = np.random.default_rng(3)
    data = rng.standard_cauchy(20_000)
    data[:10] = np.nan
    data[10:13] = np.inf
    want = compute_histogram(data, bins=40)
    got = _from_sketch(_reduce_on_device(torch.from_numpy(data), 40).numpy(), 40)
    np.testing.assert_array_equal(got.edges, want.edges)
    np.testing.assert_array_equal(got.counts, want.counts)
    assert (got.count, got.n_nan, got.n_posinf) == (want.count, want.n_nan, want.n_posinf)


float_arrays = arrays(
    np.float64,
    st.integers(0, 200),
    elements=st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
)


@settings(max_examples=150, deadline=None)
@given(data=float_arrays, bins=st.integers(1, 70))
def test_hypothesis_any_float_array(data: np.ndarray, bins: int) -> None:
    h = compute_histogram(data, bins=bins)
    _check_invariants(h, data.size, bins)
    assert h.n_nan == int(np.isnan(data).sum())
    assert h.n_posinf == int(np.isposinf(data).sum())
    assert h.n_neginf == int(np.isneginf(data).sum())
    finite = data[np.isfinite(data)]
    assert h.count == finite.size
    if finite.size and np.isfinite(finite.max() - finite.min()) and finite.min() < finite.max():
        width = finite.max() - finite.min()
        with np.errstate(all="ignore"):
            fits = np.isfinite(bins / width)
        if fits:
            with np.errstate(all="ignore"):  # numpy's own linspace may warn near float max
                expected = np.histogram(finite, bins=bins)[0]
            np.testing.assert_array_equal(h.counts, expected)
    device = _from_sketch(_reduce_on_device(torch.from_numpy(data), bins).numpy(), bins)
    _check_invariants(device, data.size, bins)
    assert (device.count, device.n_nan, device.n_posinf, device.n_neginf) == (
        h.count,
        h.n_nan,
        h.n_posinf,
        h.n_neginf,
    )
    np.testing.assert_array_equal(device.edges, h.edges)
    np.testing.assert_array_equal(device.counts, h.counts)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_cuda_tensor_is_binned_on_device_like_the_cpu(dtype: torch.dtype) -> None:
    torch.manual_seed(2)
    t = (torch.randn(100_000) * 3).to(dtype)
    t[:5] = NAN
    t[5:8] = INF
    t[8] = -INF
    want = compute_histogram(t, bins=50)
    got = compute_histogram(t.cuda(), bins=50)
    _check_invariants(got, t.numel(), 50)
    assert (got.count, got.n_nan, got.n_posinf, got.n_neginf) == (want.count, 5, 3, 1)
    assert (got.min, got.max) == (want.min, want.max)
    np.testing.assert_array_equal(got.edges, want.edges)
    np.testing.assert_array_equal(got.counts, want.counts)


@cuda
def test_cuda_host_copy_is_only_the_sketch(monkeypatch: pytest.MonkeyPatch) -> None:
    """N4 on a GPU: a 2^26-element tensor; what crosses to the host is the sketch alone."""
    copied: list[int] = []
    real_cpu, real_to = torch.Tensor.cpu, torch.Tensor.to

    def spy_cpu(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        copied.append(self.numel())
        return real_cpu(self, *args, **kwargs)

    def spy_to(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = real_to(self, *args, **kwargs)
        if self.is_cuda and not out.is_cuda:
            copied.append(self.numel())
        return out

    t = torch.randn(1 << 26, device="cuda")
    monkeypatch.setattr(torch.Tensor, "cpu", spy_cpu)
    monkeypatch.setattr(torch.Tensor, "to", spy_to)
    pending = begin_histogram(t, bins=64)
    h = pending.result()
    assert copied == [2 * 64 + 1 + 8]
    assert h.count == 1 << 26


@cuda
@pytest.mark.parametrize("shape", [(0,), (3, 0, 5), ()])
def test_cuda_empty_and_zero_dim(shape: tuple[int, ...]) -> None:
    h = compute_histogram(torch.full(shape, 4.0, device="cuda"), bins=3)
    _check_invariants(h, math.prod(shape), 3)
