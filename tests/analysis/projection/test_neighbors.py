"""Nearest neighbours equal a brute-force computation, chunked or not."""

from __future__ import annotations

import numpy as np
import pytest

from deepscope.analysis.projection import ProjectionError, nearest
from deepscope.analysis.projection import neighbors as nb


def _brute(x: np.ndarray, i: int, k: int, metric: str) -> list[int]:
    x = x.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1)
        d = 1 - (x @ x[i]) / (norms * norms[i])
    else:
        d = np.linalg.norm(x - x[i], axis=1)
    d[i] = np.inf
    d[~np.isfinite(d)] = np.inf
    return [int(j) for j in np.argsort(d, kind="stable")[:k]]


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
@pytest.mark.parametrize("chunk", [7 * 16, nb.CHUNK_VALUES])
def test_neighbours_equal_brute_force(
    metric: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nb, "CHUNK_VALUES", chunk)  # 7 rows per chunk: many chunks
    x = np.random.default_rng(0).normal(size=(200, 16)).astype(np.float32)
    x[[3, 50]] = np.nan
    for i in (0, 49, 199):
        got = nearest(x, i, k=10, metric=metric)  # type: ignore[arg-type]
        assert [j for j, _ in got] == _brute(x, i, 10, metric)
        assert all(j not in (3, 50, i) for j, _ in got)
        assert [d for _, d in got] == sorted(d for _, d in got)


def test_neighbours_refuse_bad_points() -> None:
    x = np.ones((5, 3), np.float32)
    x[2] = np.nan
    x[4] = 0
    with pytest.raises(ProjectionError, match="NaN"):
        nearest(x, 2)
    with pytest.raises(ProjectionError, match="all zeros"):
        nearest(x, 4)
    with pytest.raises(ProjectionError, match="does not exist"):
        nearest(x, 5)
    assert [j for j, _ in nearest(x, 0, k=10, metric="euclidean")] == [1, 3, 4]
