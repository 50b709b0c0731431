"""Nearest neighbours of one point in the original D-dimensional space, by brute force in
row chunks (exact, bounded memory): cosine or euclidean distance, NaN/Inf rows skipped.

Example:
    >>> import numpy as np
    >>> nearest(np.array([[0.0, 0], [1, 0], [5, 0]], np.float32), 0, k=1)
    [(1, 1.0)]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from deepscope.analysis.projection.base import ProjectionError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["CHUNK_VALUES", "nearest"]

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
