"""Nearest neighbours in the original D-dimensional space, exact, by brute force in row
chunks (bounded memory): `nearest` for one point (cosine or euclidean distance, NaN/Inf
rows skipped), `knn_graph` for every point at once (t-SNE's neighbour graph).

Example:
    >>> import numpy as np
    >>> nearest(np.array([[0.0, 0], [1, 0], [5, 0]], np.float32), 0, k=1)
    [(1, 1.0)]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from deepscope.analysis.projection.base import ProjectionError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["CHUNK_VALUES", "KNN_BLOCK_VALUES", "knn_graph", "nearest"]

CHUNK_VALUES = 1 << 22
"""Values of the data matrix handled per chunk (16 MiB of float32)."""


def nearest(
    x: NDArray[Any],
    index: int,
    k: int = 10,
    metric: Literal["cosine", "euclidean"] = "cosine",
) -> list[tuple[int, float]]:
    """The `k` rows of `x` closest to row `index` (itself excluded), nearest first, as
    ``(row, distance)``; ties go to the lower row. Cosine distance is ``1 - cos``; rows with
    a NaN or infinity, and (for cosine) zero rows, are never neighbours."""
    import numpy as np

    n = x.shape[0]
    if not 0 <= index < n:
        raise ProjectionError(f"point {index} does not exist: there are {n} points")
    if metric not in ("cosine", "euclidean"):
        raise ProjectionError(f"metric is 'cosine' or 'euclidean', not {metric!r}")
    q = np.asarray(x[index], dtype=np.float64)
    if not np.isfinite(q).all():
        raise ProjectionError(f"point {index} has NaN or infinite values: it has no neighbours")
    qn = float(np.linalg.norm(q))
    if metric == "cosine" and qn == 0:
        raise ProjectionError(f"point {index} is all zeros: cosine distance is undefined")
    k = max(0, min(int(k), n - 1))
    rows = max(1, CHUNK_VALUES // max(1, x.shape[1]))
    best_d = np.empty(0)
    best_i = np.empty(0, dtype=np.int64)
    for start in range(0, n, rows):
        chunk = np.asarray(x[start : start + rows], dtype=np.float64)
        dot = chunk @ q
        sq = np.einsum("ij,ij->i", chunk, chunk)
        if metric == "cosine":
            norms = np.sqrt(sq)
            with np.errstate(invalid="ignore", divide="ignore"):
                d = 1.0 - dot / (norms * qn)
            d[norms == 0] = np.nan
        else:
            diff = chunk - q
            d = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        d[~np.isfinite(d)] = np.inf
        ids = np.arange(start, start + len(chunk))
        if start <= index < start + len(chunk):
            d[index - start] = np.inf
        best_d = np.concatenate([best_d, d])
        best_i = np.concatenate([best_i, ids])
        if len(best_d) > k:
            keep = np.lexsort((best_i, best_d))[:k]
            best_d, best_i = best_d[keep], best_i[keep]
    order = np.lexsort((best_i, best_d))
    return [(int(best_i[j]), float(best_d[j])) for j in order if np.isfinite(best_d[j])]


KNN_BLOCK_VALUES = 1 << 22
"""Distances computed per block by `knn_graph` (16 MiB of float32, 32 MiB of candidates)."""
KNN_MARGIN = 8
"""Extra candidates per row that `knn_graph` re-ranks in float64, so float32 rounding in
the blocked matrix product cannot swap the k-th and (k+1)-th neighbour."""


def knn_graph(
    x: NDArray[Any],
    k: int,
    metric: Literal["cosine", "euclidean"] = "euclidean",
    *,
    threads: int = 1,
    on_block: Callable[[float], bool] | None = None,
) -> tuple[NDArray[np.int64], NDArray[np.float64]] | None:
    """The exact `k` nearest neighbours of every row of `x` (itself excluded), nearest
    first, ties to the lower row: ``(indices, distances)``, both N x k.

    Euclidean distance, or for ``"cosine"`` the euclidean distance between the rows scaled
    to unit length (``sqrt(2 - 2 cos)``, the "angular" distance of Annoy, zero rows kept
    as they are). Rows are handled in blocks: a float32 matrix product against all rows
    (BLAS), ``argpartition`` for ``k + KNN_MARGIN`` candidates, then the candidates are
    re-ranked with float64 distances; a row whose float32 rounding could have left out a
    true neighbour is redone in float64. `threads` blocks run at once. `on_block(fraction)`
    hears after each block; when it returns True the search stops and returns None.
    Rows must be finite (`deepscope.project` drops the others first)."""
    import numpy as np

    n = x.shape[0]
    if not 0 < k < n:
        raise ProjectionError(f"k must be in [1, {n - 1}] for {n} points, got {k}")
    data = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(data, axis=1, keepdims=True)
        data = data / np.where(norms == 0, 1.0, norms)
    else:  # centred: smaller norms, less cancellation in |a|^2 + |b|^2 - 2ab
        data = data - data.mean(axis=0)
    x32 = np.ascontiguousarray(data, dtype=np.float32)
    sq32 = np.einsum("ij,ij->i", x32, x32)
    sq64 = np.einsum("ij,ij->i", data, data)
    m = min(n - 1, k + KNN_MARGIN)
    err = (2 * x32.shape[1] + 8) * float(np.finfo(np.float32).eps)
    sq_max = float(sq32.max())
    rows = max(1, min(n, KNN_BLOCK_VALUES // n))
    starts = list(range(0, n, rows))
    idx = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float64)

    def block(start: int) -> None:
        stop = min(n, start + rows)
        d2 = x32[start:stop] @ x32.T  # float32 BLAS: the bulk of the work
        d2 *= -2
        d2 += sq32
        d2 += sq32[start:stop, None]
        rows_here = np.arange(stop - start)
        d2[rows_here, rows_here + start] = np.inf  # not its own neighbour
        if m < n - 1:
            part = np.argpartition(d2, m, axis=1)
            cand = part[:, :m]
            # the smallest float32 distance left out: the bound a non-candidate must respect
            left_out = np.take_along_axis(d2, part[:, m : m + 1], axis=1)[:, 0]
        else:
            cand = np.argsort(d2, axis=1)[:, :m]
        del d2
        exact = _exact_sq(data, sq64, start, cand)
        order = np.lexsort((cand, exact), axis=1)[:, :k]
        idx[start:stop] = np.take_along_axis(cand, order, axis=1)
        best = np.take_along_axis(exact, order, axis=1)
        if m < n - 1:
            # float32 |a|^2 + |b|^2 - 2ab is off by at most err * (|a|^2 + |b|^2): where the
            # k-th exact distance is not clearly below every left-out one, redo the row in
            # float64 (data far from the origin against small neighbour distances)
            slack = err * (sq32[start:stop].astype(np.float64) + sq_max)
            for r in np.flatnonzero(best[:, k - 1] >= left_out - slack):
                i = start + int(r)
                full = sq64[i] + sq64 - 2 * (data @ data[i])
                full[i] = np.inf
                top = np.lexsort((np.arange(n), full))[:k]
                idx[i], best[r] = top, full[top]
        dist[start:stop] = np.sqrt(np.maximum(best, 0.0))

    with _blas_threads(1 if threads > 1 else None):
        if threads <= 1:
            for i, start in enumerate(starts):
                block(start)
                if on_block is not None and on_block((i + 1) / len(starts)):
                    return None
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(min(threads, len(starts))) as pool:
                futures = [pool.submit(block, start) for start in starts]
                for i, future in enumerate(futures):
                    future.result()
                    if on_block is not None and on_block((i + 1) / len(starts)):
                        for rest in futures[i + 1 :]:
                            rest.cancel()
                        return None
    return idx, dist


def _exact_sq(
    data: NDArray[np.float64], sq: NDArray[np.float64], start: int, cand: NDArray[np.intp]
) -> NDArray[np.float64]:
    """float64 squared distances from rows ``start + i`` to their candidates ``cand[i]``, in
    sub-blocks of bounded memory."""
    import numpy as np

    out = np.empty(cand.shape, np.float64)
    sub = max(1, (1 << 22) // max(1, cand.shape[1] * data.shape[1]))
    for s in range(0, len(cand), sub):
        c = cand[s : s + sub]
        rows = data[start + s : start + s + len(c)]
        dots = np.einsum("id,ijd->ij", rows, data[c])
        out[s : s + sub] = sq[start + s : start + s + len(c), None] + sq[c] - 2 * dots
    return out


@contextmanager
def _blas_threads(limit: int | None) -> Iterator[None]:
    """BLAS limited to `limit` threads inside (none when None or threadpoolctl is absent):
    `knn_graph`'s own threads each run one block's matrix product."""
    if limit is None:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=limit, user_api="blas"):
        yield
