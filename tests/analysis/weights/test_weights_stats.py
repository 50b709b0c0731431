"""Weight statistics equal numpy's, NaN/Inf counted not propagated, any dtype (issue 15)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from weights_reference import numpy_stats

import deepscope
from deepscope.analysis.weights.stats import tensor_stats


def _check(got: dict[str, Any], want: dict[str, Any]) -> None:
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def test_stats_equal_numpy_with_nan_inf_and_small_chunks() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(1001) * 3 + 1
    a[[3, 50]] = np.nan
    a[7], a[8] = np.inf, -np.inf
    a[100:110] = 0.0
    got = tensor_stats(a, chunk=64)  # 16 chunks merged
    _check(got, numpy_stats(a))
    assert got["nan"] == 2 and got["inf"] == 2 and got["zeros"] == pytest.approx(10 / 1001)
    assert math.isfinite(got["mean"]) and math.isfinite(got["l2"])


def test_empty_and_all_nan_tensors() -> None:
    empty = tensor_stats(np.zeros((0, 4)))
    assert empty["count"] == 0 and empty["mean"] is None and empty["zeros"] is None
    nan = tensor_stats(np.full(5, np.nan))
    assert nan["count"] == 5 and nan["nan"] == 5 and nan["mean"] is None and nan["l2"] is None


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.int8, torch.float32])
def test_low_precision_dtypes_equal_numpy_on_the_same_values(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    t = (torch.randn(40, 30, generator=g) * 50).to(dtype)
    t.view(-1)[5] = 0
    if dtype.is_floating_point:
        t.view(-1)[0] = float("nan")
        t.view(-1)[1] = float("inf")
    w = deepscope.weights({"layer.weight": t})
    row = w.stats()["layer.weight"]
    assert row["dtype"] == str(dtype).removeprefix("torch.") and row["shape"] == (40, 30)
    exact = t.float().numpy().astype(np.float64)  # bf16/fp16/int8 are exact in float32
    _check(row, numpy_stats(exact))


def test_layer_and_total_rows_combine_the_tensors() -> None:
    rng = np.random.default_rng(2)
    tensors = {
        "a.weight": rng.standard_normal((5, 4)),
        "a.bias": rng.standard_normal(5),
        "b.weight": rng.standard_normal((3, 5)) + 2,
    }
    w = deepscope.weights(tensors)
    layers = w.layer_stats()
    assert set(layers) == {"a", "b"}
    _check(
        layers["a"], numpy_stats(np.concatenate([tensors["a.weight"].ravel(), tensors["a.bias"]]))
    )
    _check(w.total(), numpy_stats(np.concatenate([v.ravel() for v in tensors.values()])))
    lines = w.to_csv().splitlines()
    assert lines[0].startswith("kind,name,shape,dtype,count,mean")
    assert lines[1].startswith("tensor,a.weight,5x4,float64,20,")
    assert [ln.split(",")[0] for ln in lines[1:]] == ["tensor"] * 3 + ["layer"] * 2 + ["total"]
