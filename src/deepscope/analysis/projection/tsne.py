"""t-SNE with openTSNE (``pip install 'deepscope[tsne]'``): FFT-accelerated gradients in 2-D
from `FFT_FROM` points on (Barnes-Hut below, where it is faster, as openTSNE's own "auto"
does, and in 3-D, which the FFT method does not support), multi-threaded, PCA
initialisation, seeded. Up to `EXACT_KNN_MAX` points the perplexity affinities are built
on the exact neighbour graph (`neighbors.knn_graph`) instead of openTSNE's approximate
Annoy search, and the FFT gradient's transforms run on every thread (`_opentsne`).

Progress: the exact neighbour search reports up to `KNN_SHARE` after each block of rows;
openTSNE calls back every `CALLBACK_EVERY` iterations; the callback reports the
fraction done, hands over a partial layout every `PARTIAL_EVERY` iterations, and stops the
optimisation when `progress` returns True (cancellation).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deepscope.analysis.projection.base import (
    Progress,
    ProjectionError,
    check_keys,
    need,
    number,
)
from deepscope.analysis.projection.neighbors import knn_graph

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["CALLBACK_EVERY", "EXACT_KNN_MAX", "PARTIAL_EVERY", "TSNE", "max_perplexity"]

FFT_FROM = 10_000
EXACT_KNN_MAX = 100_000
"""Up to this many points the neighbour graph is exact (`neighbors.knn_graph`: blocked
BLAS, cheaper than openTSNE's approximate Annoy search there); above, openTSNE's Annoy."""
KNN_SHARE = 0.05
"""The part of the progress fraction the exact neighbour search reports."""
CALLBACK_EVERY = 25
PARTIAL_EVERY = 250
_DEFAULTS: dict[str, Any] = {
    "perplexity": 30.0,
    "n_iter": 500,
    "early_exaggeration_iter": 250,
    "exaggeration": None,
    "metric": "euclidean",
    "gradient": "auto",
    "n_jobs": None,  # not part of a result's identity: threads only
}
IDENTITY_EXEMPT = frozenset({"n_jobs"})


def max_perplexity(n: int) -> float:
    """The largest perplexity t-SNE supports for `n` points: (n - 1) / 3."""
    return (n - 1) / 3


class _TSNE:
    name = "tsne"

    def normalize(self, params: Mapping[str, Any], n: int, dims: int) -> dict[str, Any]:
        check_keys("tsne", params, _DEFAULTS)
        out = {**_DEFAULTS, **params}
        out["perplexity"] = number("perplexity", out["perplexity"], 1, 1e5)
        out["n_iter"] = number("n_iter", out["n_iter"], 0, 100_000, integer=True)
        out["early_exaggeration_iter"] = number(
            "early_exaggeration_iter", out["early_exaggeration_iter"], 0, 100_000, integer=True
        )
        if out["exaggeration"] is not None:
            out["exaggeration"] = number("exaggeration", out["exaggeration"], 1, 1e3)
        if out["metric"] not in ("euclidean", "cosine"):
            raise ProjectionError("tsne option 'metric' is 'euclidean' or 'cosine'")
        if out["gradient"] not in ("auto", "fft", "bh"):
            raise ProjectionError("tsne option 'gradient' is 'auto', 'fft' or 'bh'")
        if out["gradient"] == "auto":
            out["gradient"] = "fft" if dims <= 2 and n >= FFT_FROM else "bh"
        if out["gradient"] == "fft" and dims > 2:
            raise ProjectionError("t-SNE's FFT gradients work in 2-D only; use gradient='bh'")
        if out["n_jobs"] is not None:
            out["n_jobs"] = number("n_jobs", out["n_jobs"], 1, 1024, integer=True)
        if n < 4:
            raise ProjectionError(f"t-SNE needs at least 4 finite points, got {n}; use PCA")
        if out["perplexity"] > max_perplexity(n):
            raise ProjectionError(
                f"t-SNE perplexity {out['perplexity']:g} is too large for {n} points: it must "
                f"be at most (N-1)/3 = {max_perplexity(n):.4g}; pass perplexity="
                f"{max(1, int(max_perplexity(n)))} or use PCA"
            )
        return out

    def fit(
        self,
        x: NDArray[np.float32],
        dims: int,
        seed: int,
        params: Mapping[str, Any],
        progress: Progress | None,
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        need("openTSNE", "tsne")
        import numpy as np
        from openTSNE import TSNE as OpenTSNE

        from deepscope.analysis.projection import _opentsne

        n_iter, early = int(params["n_iter"]), int(params["early_exaggeration_iter"])
        gradient, metric = params["gradient"], params["metric"]
        perplexity = float(params["perplexity"])
        threads = params["n_jobs"] or _threads(len(x))
        aff = None
        if len(x) <= EXACT_KNN_MAX:  # openTSNE would search approximately (Annoy)
            on_block = None
            if progress is not None:
                report = progress  # a local name mypy keeps narrowed inside the lambda

                def on_block(fraction: float) -> bool:
                    return bool(report(KNN_SHARE * fraction, None))

            k = min(len(x) - 1, int(3 * perplexity))  # openTSNE's own choice of k
            graph = knn_graph(x, k, metric, threads=threads, on_block=on_block)
            if graph is None:
                return np.empty((0, dims), np.float32), {"stopped": True}
            aff = _opentsne.affinities(*graph, perplexity, metric, threads)
        callbacks = None if progress is None else [_Callback(progress, early, n_iter)]
        tsne = OpenTSNE(
            n_components=dims,
            perplexity=perplexity,
            n_iter=n_iter,
            early_exaggeration_iter=early,
            exaggeration=params["exaggeration"],
            metric=metric,
            initialization="pca",
            negative_gradient_method=gradient,
            n_jobs=threads,
            random_state=int(seed),
            callbacks=callbacks,
            callbacks_every_iters=CALLBACK_EVERY,
        )
        with _opentsne.threaded_fft(threads if gradient == "fft" else 1):
            embedding = tsne.fit(np.asarray(x, dtype=np.float64), affinities=aff)
        coords = np.ascontiguousarray(np.asarray(embedding), dtype=np.float32)
        stopped = bool(callbacks and callbacks[0].stopped)
        return coords, {"stopped": stopped}


def _threads(n: int) -> int:
    """One thread below `FFT_FROM` points (Barnes-Hut threads cost more than they give
    there, many times more on a busy machine), else every core this process may use."""
    if n < FFT_FROM:
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _Callback:
    """openTSNE's callback: the two phases count their iterations separately."""

    def __init__(self, progress: Progress, early: int, n_iter: int) -> None:
        self.progress = progress
        self.total = max(1, early + n_iter)
        self.early = early
        self.done = 0
        self.phase_last = 0
        self.stopped = False

    def optimization_about_to_start(self) -> None:
        self.done += self.phase_last
        self.phase_last = 0

    def __call__(self, iteration: int, error: float, embedding: Any) -> bool:
        import numpy as np

        self.phase_last = iteration
        done = self.done + iteration
        partial = None
        if done % PARTIAL_EVERY == 0:
            partial = np.asarray(embedding, dtype=np.float32)
        fraction = KNN_SHARE + (1 - KNN_SHARE) * done / self.total
        self.stopped = bool(self.progress(min(fraction, 0.999), partial))
        return self.stopped


TSNE = _TSNE()
