"""PCA equals numpy's SVD projection up to sign, deterministically, on torch and numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepscope
from deepscope.analysis.projection import ProjectionError
from deepscope.analysis.projection.result import PALETTE


def _data(n: int = 300, d: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(5.0, 0.1, d)  # distinct variances: components are well defined
    return (rng.normal(size=(n, d)) * scales + 3.0).astype(np.float32)


def _reference(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xc = x.astype(np.float64) - x.mean(0)
    _u, s, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:k].T, s[:k] ** 2 / (len(x) - 1), s[:k] ** 2 / (s**2).sum()


@pytest.mark.parametrize("backend", ["torch", "numpy"])
@pytest.mark.parametrize("solver", ["full", "randomized"])
def test_pca_coords_equal_numpy_svd_up_to_sign(backend: str, solver: str) -> None:
    x = _data()
    p = deepscope.project(x, "pca", dims=3, solver=solver, backend=backend)
    ref, var, ratio = _reference(x, 3)
    for j in range(3):
        sign = np.sign(ref[:, j] @ p.coords[:, j])
        np.testing.assert_allclose(p.coords[:, j], sign * ref[:, j], atol=2e-3 * abs(ref).max())
    np.testing.assert_allclose(p.explained_variance, var, rtol=1e-3)
    np.testing.assert_allclose(p.explained_variance_ratio, ratio, rtol=1e-3)
    assert p.coords.dtype == np.float32 and p.coords.shape == (300, 3)


def test_pca_is_sign_normalised_whatever_the_row_order() -> None:
    x = _data()
    order = np.random.default_rng(1).permutation(len(x))
    a = deepscope.project(x, "pca").coords
    b = deepscope.project(x[order], "pca").coords
    np.testing.assert_allclose(a[order], b, atol=1e-3)
    c = deepscope.project(torch.from_numpy(x).double(), "pca").coords  # a tensor, float64
    np.testing.assert_allclose(a, c, atol=1e-3)


def test_randomized_pca_is_deterministic_per_seed() -> None:
    x = _data(n=500, d=60)
    a = deepscope.project(x, "pca", solver="randomized", seed=3).coords
    b = deepscope.project(x, "pca", solver="randomized", seed=3).coords
    assert np.array_equal(a, b)


def test_nan_rows_are_dropped_counted_and_come_back_as_nan() -> None:
    x = _data(n=100)
    x[[5, 17]] = np.nan
    x[40, 3] = np.inf
    p = deepscope.project(x, "pca")
    assert p.dropped == 3
    assert (
        np.isnan(p.coords[[5, 17, 40]]).all()
        and np.isfinite(np.delete(p.coords, [5, 17, 40], 0)).all()
    )
    clean = deepscope.project(np.delete(x, [5, 17, 40], 0), "pca").coords
    np.testing.assert_allclose(np.delete(p.coords, [5, 17, 40], 0), clean, atol=1e-4)


def test_bad_input_says_what_to_do() -> None:
    with pytest.raises(ProjectionError, match="N x D"):
        deepscope.project(np.zeros((4, 2, 2)), "pca")
    with pytest.raises(ProjectionError, match="dims must be 2 or 3"):
        deepscope.project(_data(), "pca", dims=4)
    with pytest.raises(ProjectionError, match="unknown projection method"):
        deepscope.project(_data(), "mds")
    with pytest.raises(ProjectionError, match="no option 'perplexity'"):
        deepscope.project(_data(), "pca", perplexity=5)


def test_save_draws_every_label_colour(tmp_path: Path) -> None:
    x = np.concatenate([np.zeros((50, 2)), np.ones((50, 2)) * 10]).astype(np.float32)
    x += np.random.default_rng(0).normal(scale=0.1, size=x.shape).astype(np.float32)
    labels = ["cat"] * 50 + ["dog"] * 50
    p = deepscope.project(x, "pca", labels=labels)
    path = p.save(tmp_path / "p.png", size=300)
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    found = {tuple(int(c) for c in px) for px in pixels}
    for hexcode in PALETTE[:2]:
        assert tuple(int(hexcode[i : i + 2], 16) for i in (0, 2, 4)) in found
    assert tuple(int(PALETTE[2][i : i + 2], 16) for i in (0, 2, 4)) not in found
    assert p._repr_png_()[:4] == b"\x89PNG"
