"""t-SNE's fast path: the exact neighbour graph equals a brute-force computation, the
affinities built on it are openTSNE's own (exact search), the threaded FFT gives the same
gradient on any thread count and is undone afterwards, results do not depend on threads,
and the neighbour search can be cancelled. The digits' quality on the exact graph is
checked in test_tsne_umap.py."""

from __future__ import annotations

import numpy as np
import pytest

import deepscope
from deepscope.analysis.projection import Cancelled, ProjectionError
from deepscope.analysis.projection import neighbors as nb
from deepscope.analysis.projection import tsne as tsne_mod

pytest.importorskip("openTSNE")


def _brute(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    x = x.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms == 0, 1, norms)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(d, idx, axis=1)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("threads", [1, 3])
def test_knn_graph_equals_brute_force(
    metric: str, threads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nb, "KNN_BLOCK_VALUES", 37 * 400)  # 37 rows a block: 11 blocks
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(400, 24)) + 5.0).astype(np.float32)
    x[:200] += rng.normal(scale=3, size=(1, 24)).astype(np.float32)
    x[7] = x[300]  # a duplicate: distance 0, still not its own neighbour
    got = nb.knn_graph(x, 15, metric, threads=threads)  # type: ignore[arg-type]
    assert got is not None
    want_i, want_d = _brute(x, 15, metric)
    assert got[0].shape == (400, 15) and got[0].dtype == np.int64
    assert (got[0] != np.arange(400)[:, None]).all()
    np.testing.assert_array_equal(got[0], want_i)
    np.testing.assert_allclose(got[1], want_d, rtol=1e-9, atol=1e-9)
    assert got[0][7, 0] == 300 and got[1][7, 0] == 0


def test_knn_graph_is_exact_where_float32_is_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nb, "KNN_BLOCK_VALUES", 50 * 400)
    rng = np.random.default_rng(3)
    # two clusters 1000 units from the mean, spread 1: float32 |a|^2 + |b|^2 - 2ab is off
    # by more than the gaps between neighbours, so its ranking is wrong in every row
    centres = rng.normal(scale=1000, size=(2, 24))
    x = (centres[np.arange(400) % 2] + rng.normal(size=(400, 24))).astype(np.float32)
    got = nb.knn_graph(x, 15)
    assert got is not None
    want_i, want_d = _brute(x, 15, "euclidean")
    np.testing.assert_array_equal(got[0], want_i)
    np.testing.assert_allclose(got[1], want_d, rtol=1e-9)


def test_knn_graph_refuses_bad_k_and_stops_when_asked() -> None:
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    with pytest.raises(ProjectionError, match="k must be in"):
        nb.knn_graph(x, 50)
    seen: list[float] = []
    assert nb.knn_graph(x, 5, on_block=lambda f: seen.append(f) or True) is None
    assert seen == [1.0]


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_affinities_equal_opentsnes_exact_search(metric: str) -> None:
    from openTSNE.affinity import MultiscaleMixture

    from deepscope.analysis.projection import _opentsne

    x = np.random.default_rng(1).normal(size=(300, 10))
    x[:100] += 4
    graph = nb.knn_graph(x, 45, metric)  # type: ignore[arg-type]
    assert graph is not None
    ours = _opentsne.affinities(*graph, 15.0, metric, 1).P
    # openTSNE's exact search: scikit-learn, whose cosine distances are 1 - cos; ours are
    # sqrt(2 - 2 cos), Annoy's (what openTSNE uses from 1000 points on): compare on the
    # distances openTSNE would get from the same neighbours
    ref_data = x if metric == "euclidean" else x / np.linalg.norm(x, axis=1, keepdims=True)
    theirs = MultiscaleMixture(ref_data, [15.0], method="exact", metric="euclidean").P
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours.toarray(), theirs.toarray(), rtol=1e-6, atol=1e-12)


def test_threaded_fft_gives_the_same_gradient_and_is_undone() -> None:
    from openTSNE import _tsne
    from openTSNE._matrix_mul import matrix_mul

    from deepscope.analysis.projection import _opentsne

    emb = np.random.default_rng(2).uniform(-40, 40, size=(3000, 2))
    kw = {"n_interpolation_points": 3, "min_num_intervals": 50, "ints_in_interval": 1.0}

    def gradient() -> tuple[float, np.ndarray]:
        g = np.zeros_like(emb)
        return _tsne.estimate_negative_gradient_fft_2d(emb, g, **kw, dof=1.0), g

    plain = gradient()
    with _opentsne.threaded_fft(1):
        assert matrix_mul.np is not np  # the FFT module sees the threaded transforms
        one = gradient()
    with _opentsne.threaded_fft(3):
        three = gradient()
    assert matrix_mul.np is np  # undone
    assert one[0] == three[0] and np.array_equal(one[1], three[1])
    np.testing.assert_allclose(one[1], plain[1], rtol=1e-9, atol=1e-12)


def test_tsne_fft_does_not_depend_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import scipy.fft

    workers: list[int] = []
    rfft2 = scipy.fft.rfft2

    def spy(*args: object, **kwargs: object) -> object:
        workers.append(int(kwargs["workers"]))  # type: ignore[call-overload]
        return rfft2(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(scipy.fft, "rfft2", spy)
    x = np.random.default_rng(4).normal(size=(1000, 16)).astype(np.float32)
    x[:300] += 3
    kw = {"gradient": "fft", "n_iter": 40, "early_exaggeration_iter": 20, "cache": False}
    a = deepscope.project(x, "tsne", n_jobs=1, **kw)
    assert workers and set(workers) == {1}  # the fit's transforms go through scipy
    b = deepscope.project(x, "tsne", n_jobs=3, **kw)
    assert set(workers) == {1, 3}
    assert np.array_equal(a.coords, b.coords)
    assert np.isfinite(a.coords).all() and a.coords.std() > 1


def test_cancel_during_the_neighbour_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nb, "KNN_BLOCK_VALUES", 20 * 400)  # 20 blocks
    x = np.random.default_rng(5).normal(size=(400, 8)).astype(np.float32)
    calls: list[float] = []

    def stop(fraction: float, partial: np.ndarray | None) -> bool:
        calls.append(fraction)
        return len(calls) == 3

    with pytest.raises(Cancelled):
        deepscope.project(x, "tsne", progress=stop, cache=False)
    assert calls == pytest.approx([tsne_mod.KNN_SHARE * i / 20 for i in (1, 2, 3)])
