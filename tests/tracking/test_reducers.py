"""The watcher's reductions: the CPU fast path equals numpy and the branch-free (device)
path, and anything unusual (NaN, Inf, one value, a range near the float limit) is still
counted exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepscope.capture.reducers import (
    ACT_FIELDS,
    _masked_summary,
    activation_stats,
    decode_summary,
    tensor_summary,
)


def _away_from_edges(x: np.ndarray, bins: int) -> np.ndarray:
    """Drop values within 1e-3 of a bin edge, where float32 and float64 binning may differ."""
    lo, hi = float(x.min()), float(x.max())
    pos = (x.astype(np.float64) - lo) / (hi - lo) * bins
    inner = np.abs(pos - np.round(pos)) > 1e-3
    inner |= (x == x.min()) | (x == x.max())
    return x[inner]


@settings(max_examples=60, deadline=None)
@given(
    n=st.one_of(st.integers(2, 5000), st.integers(20_000, 60_000)),  # numpy and torch paths
    bins=st.sampled_from([1, 7, 64, 300]),
    scale=st.sampled_from([1e-30, 1e-3, 1.0, 1e6, 1e30]),
    seed=st.integers(0, 2**31 - 1),
)
def test_cpu_fast_path_equals_numpy(n: int, bins: int, scale: float, seed: int) -> None:
    x = (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)
    x = _away_from_edges(x, bins)
    if x.min() == x.max():
        return
    row = tensor_summary(torch.from_numpy(x), bins).numpy()
    h = decode_summary(row, bins)
    counts, edges = np.histogram(x.astype(np.float64), bins=bins, range=(x.min(), x.max()))
    assert h.counts.tolist() == counts.tolist()
    np.testing.assert_allclose(h.edges, edges, rtol=1e-6, atol=1e-6 * float(x.max() - x.min()))
    assert (h.count, h.n_nan, h.n_posinf, h.n_neginf) == (len(x), 0, 0, 0)
    # float32 accumulation: the error bound grows with n, and a sum that cancels to ~0
    # (n normals of scale s sum to ~sqrt(n)*s) cannot meet a relative bound
    assert h.sum == pytest.approx(
        float(x.astype(np.float64).sum()), rel=1e-4, abs=1e-7 * len(x) * scale
    )
    sq = float((x.astype(np.float64) ** 2).sum())
    assert h.sum_sq == pytest.approx(sq, rel=1e-4)


@pytest.mark.parametrize(
    "values",
    [
        [1.0, float("nan"), 2.0, float("inf"), -float("inf"), 3.0],
        [float("nan")] * 4,
        [5.0, 5.0, 5.0],
        [-3e38, 3e38, 0.0, 1.0],
        [3e38, 3e38, 3e38],
    ],
)
def test_unusual_values_agree_with_the_branch_free_path(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    fast = decode_summary(tensor_summary(x, 16).numpy(), 16)
    masked = decode_summary(_masked_summary(x, 16).numpy(), 16)
    finite = np.array([v for v in values if math.isfinite(v)], dtype=np.float32)
    assert fast.counts.tolist() == masked.counts.tolist()
    assert fast.count == len(finite) == int(fast.counts.sum())
    assert fast.n_nan == sum(math.isnan(v) for v in values)
    assert (fast.n_posinf, fast.n_neginf) == (values.count(math.inf), values.count(-math.inf))
    if len(finite):
        assert (fast.min, fast.max) == (float(finite.min()), float(finite.max()))


@pytest.mark.parametrize("kind", [None, "relu", "tanh", "sigmoid"])
def test_activation_stats_cpu_equal_a_hand_computation(kind: str | None) -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 8, 5, 5) * 2
    x = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}.get(
        kind or "", lambda t: t
    )(x)
    x[:, 3] = 0.0 if kind == "relu" else x[:, 3]  # channel 3 dead
    got = dict(zip(ACT_FIELDS, activation_stats(x, kind).tolist(), strict=True))
    d = x.double()
    assert got["count"] == x.numel()
    assert got["mean"] == pytest.approx(d.mean().item(), rel=1e-5, abs=1e-7)
    assert got["std"] == pytest.approx(d.std(correction=0).item(), rel=1e-4)
    assert got["nonfinite"] == 0.0
    if kind == "relu":
        assert got["zero_frac"] == pytest.approx((d == 0).double().mean().item())
        assert got["dead_frac"] == pytest.approx(1 / 8)
    if kind == "tanh":
        assert got["sat_frac"] == pytest.approx((d.abs() > 0.99).double().mean().item())
    if kind == "sigmoid":
        sat = ((d < 0.01) | (d > 0.99)).double().mean().item()
        assert got["sat_frac"] == pytest.approx(sat)


def test_activation_stats_std_survives_a_large_mean() -> None:
    x = 1000.0 + torch.linspace(-1e-2, 1e-2, 10_001)
    got = dict(zip(ACT_FIELDS, activation_stats(x, None).tolist(), strict=True))
    assert got["std"] == pytest.approx(x.double().std(correction=0).item(), rel=1e-2)


def test_activation_stats_flag_non_finite_outputs() -> None:
    x = torch.ones(4, 3)
    x[1, 2] = float("nan")
    got = dict(zip(ACT_FIELDS, activation_stats(x, "relu").tolist(), strict=True))
    assert got["nonfinite"] == 1.0
