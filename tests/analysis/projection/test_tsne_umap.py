"""t-SNE (openTSNE) and UMAP (umap-learn) on sklearn's digits: trustworthiness (k=10) and
10-NN label agreement in 2-D at least 0.9; clear messages for bad sizes and missing extras."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.manifold import trustworthiness

import deepscope
from deepscope.analysis.projection import CACHE, Cancelled, ProjectionError
from deepscope.analysis.projection import umap as umap_mod
from deepscope.errors import OptionalDependencyError

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "numba"))


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = load_digits(return_X_y=True)
    return x.astype(np.float32), y


def _knn_agreement(coords: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    d = ((coords[:, None, :] - coords[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :k]
    return float((y[nn] == y[:, None]).mean())


def test_tsne_on_digits_keeps_neighbourhoods(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    seen: list[float] = []
    partials: list[np.ndarray] = []

    def progress(fraction: float, partial: np.ndarray | None) -> bool:
        seen.append(fraction)
        if partial is not None:
            partials.append(partial)
        return False

    p = deepscope.project(x, "tsne", early_exaggeration_iter=125, n_iter=375, progress=progress,
                          cache=False)  # fmt: skip
    assert p.coords.shape == (1797, 2) and p.params["gradient"] == "bh"
    # the issue asks 0.9; openTSNE with its own (Annoy) neighbours and these settings gave
    # 0.9920-0.9927 and 0.980-0.982 (seeds 0, 1; BH and FFT), deepscope's exact neighbour
    # graph 0.9923-0.9929 and 0.982: it must not lose that
    assert trustworthiness(x, p.coords, n_neighbors=10) >= 0.99
    assert _knn_agreement(p.coords, y) >= 0.975
    assert seen == sorted(seen) and 0 < seen[0] < 0.1 and seen[-1] > 0.9
    assert len(partials) == 2 and partials[0].shape == (1797, 2)  # at 250 and 500 iterations


def test_tsne_is_deterministic_and_cached(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x = digits[0][:300]
    CACHE.clear()
    a = deepscope.project(x, "tsne", n_iter=100, early_exaggeration_iter=50, seed=1)
    b = deepscope.project(x, "tsne", n_iter=100, early_exaggeration_iter=50, seed=1, cache=False)
    assert np.array_equal(a.coords, b.coords)
    assert len(CACHE) == 1
    c = deepscope.project(x, "tsne", n_iter=100, early_exaggeration_iter=50, seed=1, n_jobs=1)
    assert np.array_equal(a.coords, c.coords) and len(CACHE) == 1  # a hit: threads do not count
    a.coords[:] = 0  # the cached copy is not the caller's array
    d = deepscope.project(x, "tsne", n_iter=100, early_exaggeration_iter=50, seed=1)
    assert np.array_equal(d.coords, b.coords)


def test_tsne_stops_when_progress_says_so(digits: tuple[np.ndarray, np.ndarray]) -> None:
    calls: list[float] = []

    def stop_early(fraction: float, partial: np.ndarray | None) -> bool:
        calls.append(fraction)
        return len(calls) >= 2

    with pytest.raises(Cancelled):
        deepscope.project(digits[0][:200], "tsne", progress=stop_early, cache=False)
    assert len(calls) == 2


def test_tiny_inputs_get_a_clear_tsne_message() -> None:
    x = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
    with pytest.raises(
        ProjectionError,
        match=r"perplexity 30 is too large for 20 points.*at most \(N-1\)/3 = 6\.333.*perplexity=6",
    ):
        deepscope.project(x, "tsne")
    with pytest.raises(ProjectionError, match="at least 4 finite points"):
        deepscope.project(x[:3], "tsne", perplexity=1)
    x[:18] = np.nan  # NaN rows do not count
    with pytest.raises(ProjectionError, match="at least 4 finite points, got 2"):
        deepscope.project(x, "tsne", perplexity=1)
    with pytest.raises(ProjectionError, match="n_neighbors=15 needs more"):
        deepscope.project(x[18:], "umap")


def test_missing_extras_give_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    x = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    monkeypatch.setitem(sys.modules, "openTSNE", None)
    monkeypatch.setitem(sys.modules, "umap", None)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'deepscope\[tsne\]'"):
        deepscope.project(x, "tsne", perplexity=5, cache=False)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'deepscope\[umap\]'"):
        deepscope.project(x, "umap", cache=False)


@pytest.mark.slow  # umap-learn's first call compiles numba code (about a minute)
def test_umap_on_digits_keeps_neighbourhoods(
    digits: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    x, y = digits
    seen: list[float] = []

    def progress(fraction: float, partial: np.ndarray | None) -> bool:
        seen.append(fraction)
        return False

    p = deepscope.project(x, "umap", seed=0, cache=False, progress=progress)
    assert p.coords.shape == (1797, 2)
    assert trustworthiness(x, p.coords, n_neighbors=10) >= 0.9
    assert _knn_agreement(p.coords, y) >= 0.9
    # progress through the epochs: rising, past the graph share, never 1 before the end
    assert seen[0] == 0.0 and len(seen) >= 2 and seen == sorted(seen)
    assert seen[1] == pytest.approx(umap_mod.GRAPH_SHARE) and seen[-1] < 1.0
    q = deepscope.project(x, "umap", seed=0, cache=False, progress=True)  # a tqdm bar
    assert np.array_equal(p.coords, q.coords)  # the hook changes nothing in the result
    assert "umap" in capsys.readouterr().err
    calls: list[float] = []

    def stop_in_the_epochs(fraction: float, partial: np.ndarray | None) -> bool:
        calls.append(fraction)
        return fraction > 0.0  # stops at the first epoch

    with pytest.raises(Cancelled):
        deepscope.project(x, "umap", seed=0, cache=False, progress=stop_in_the_epochs)
    assert calls[-1] == pytest.approx(umap_mod.GRAPH_SHARE)
