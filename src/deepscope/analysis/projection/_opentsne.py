"""What deepscope hands openTSNE to make its t-SNE cheaper without changing what it computes.

- `affinities`: openTSNE's own perplexity affinities (the `MultiscaleMixture` that
  ``TSNE.fit`` builds, with one perplexity) on a neighbour graph computed beforehand: the
  exact one of `neighbors.knn_graph` instead of openTSNE's approximate Annoy search.
- `threaded_fft`: openTSNE's FFT gradient (its ``matrix_mul_numpy`` module) calls
  ``np.fft.rfft2`` / ``irfft2``, numpy's single-threaded pocketfft, nine times per
  iteration, while the rest of an iteration runs on every thread; inside the block those
  calls go to scipy's pocketfft with ``workers`` threads (the same transform, computed
  line by line, so the result does not depend on the thread count).

Only imported when openTSNE is installed.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from openTSNE.affinity import MultiscaleMixture
from openTSNE.nearest_neighbors import KNNIndex

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["affinities", "threaded_fft"]


class _Precomputed(KNNIndex):  # type: ignore[misc]
    """An openTSNE KNN index whose neighbours are already known (no query of new points)."""

    VALID_METRICS = ["euclidean", "cosine"]

    def __init__(
        self, indices: NDArray[np.int64], distances: NDArray[np.float64], metric: str
    ) -> None:
        super().__init__(indices, k=indices.shape[1], metric=metric)
        self._graph = (indices, distances)

    def build(self) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        return self._graph

    def query(self, query: Any, k: int) -> Any:
        raise NotImplementedError("deepscope's t-SNE does not embed new points")


def affinities(
    indices: NDArray[np.int64],
    distances: NDArray[np.float64],
    perplexity: float,
    metric: str,
    n_jobs: int,
) -> Any:
    """openTSNE's symmetric perplexity affinities P from each point's k neighbours
    (k = 3 x perplexity, as openTSNE chooses), exactly as ``openTSNE.TSNE.fit`` makes them."""
    return MultiscaleMixture(
        perplexities=[perplexity],
        knn_index=_Precomputed(indices, distances, metric),
        symmetrize=True,
        n_jobs=n_jobs,
    )


_local = threading.local()
_lock = threading.Lock()
_users = 0


class _FFT:
    """``np.fft`` with ``rfft2`` / ``irfft2`` on scipy's threaded pocketfft."""

    def __init__(self, numpy_fft: Any) -> None:
        import scipy.fft

        self._numpy_fft = numpy_fft
        self._scipy_fft = scipy.fft

    def rfft2(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        return self._scipy_fft.rfft2(a, *args, workers=getattr(_local, "workers", 1), **kwargs)

    def irfft2(self, a: Any, *args: Any, **kwargs: Any) -> Any:
        return self._scipy_fft.irfft2(a, *args, workers=getattr(_local, "workers", 1), **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._numpy_fft, name)


class _Numpy(types.ModuleType):
    """numpy, with `_FFT` as ``fft`` (what openTSNE's FFT module sees as ``np``)."""

    def __init__(self, numpy: Any) -> None:
        super().__init__("numpy")
        self._numpy = numpy
        self.fft = _FFT(numpy.fft)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._numpy, name)


@contextmanager
def threaded_fft(workers: int) -> Iterator[None]:
    """openTSNE's FFT gradients in this thread use `workers` FFT threads inside the block.
    The patch is in place while any thread is inside one and undone after; nothing is
    patched when openTSNE's FFT module is not the numpy one this expects."""
    global _users
    try:
        import numpy
        import scipy.fft  # noqa: F401
        from openTSNE._matrix_mul import matrix_mul
    except ImportError:
        yield
        return
    with _lock:
        current = getattr(matrix_mul, "np", None)
        ours = current is numpy or isinstance(current, _Numpy)
        if ours:
            if _users == 0:
                matrix_mul.np = _Numpy(numpy)
            _users += 1
    if not ours:  # an openTSNE built differently (FFTW): leave it alone
        yield
        return
    before = getattr(_local, "workers", 1)
    _local.workers = max(1, int(workers))
    try:
        yield
    finally:
        _local.workers = before
        with _lock:
            _users -= 1
            if _users == 0:
                matrix_mul.np = numpy
