"""Projection: PCA, t-SNE and UMAP of N points in D dimensions down to 2 or 3.

`project(x, method, dims, seed, **options)` is the verb; each method is one module
(`pca`, `tsne`, `umap`) with a `Method` object, listed in `METHODS`. Rows with a NaN or
infinity are dropped before the method runs, counted in `Projection.dropped`, and come
back as NaN rows so row i of the result is still point i.

Example:
    >>> import numpy as np, deepscope
    >>> x = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    >>> p = deepscope.project(x, method="pca", dims=2)
    >>> p.coords.shape, p.dropped
    ((100, 2), 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deepscope.analysis.projection.base import (
    Method,
    Progress,
    ProjectionError,
    as_matrix,
    finite_rows,
)
from deepscope.analysis.projection.cache import ProjectionCache, fingerprint, identity
from deepscope.analysis.projection.neighbors import nearest
from deepscope.analysis.projection.pca import PCA
from deepscope.analysis.projection.result import Projection
from deepscope.analysis.projection.tsne import TSNE
from deepscope.analysis.projection.umap import UMAP
from deepscope.errors import DeepscopeError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "CACHE",
    "METHODS",
    "Cancelled",
    "Projection",
    "ProjectionError",
    "nearest",
    "normalize",
    "project",
]

METHODS: dict[str, Method] = {m.name: m for m in (PCA, TSNE, UMAP)}
CACHE = ProjectionCache()
"""The process's in-memory cache of t-SNE and UMAP results (`ProjectionCache`)."""


class Cancelled(DeepscopeError):
    """A projection was stopped by its progress callback before it finished."""

    http_status = 409


def normalize(method: str, dims: int, params: Mapping[str, Any], n: int) -> dict[str, Any]:
    """`params` of `method` with defaults filled in, checked for `n` finite points and
    `dims` output dimensions (`ProjectionError` says what to change)."""
    if method not in METHODS:
        raise ProjectionError(f"unknown projection method {method!r}; use one of {sorted(METHODS)}")
    if dims not in (2, 3) or isinstance(dims, bool):
        raise ProjectionError(f"dims must be 2 or 3, not {dims!r}")
    return METHODS[method].normalize(dict(params), n, dims)


def project(
    x: Any,
    method: str = "pca",
    dims: int = 2,
    seed: int = 0,
    *,
    labels: Sequence[Any] | None = None,
    cache: bool = True,
    progress: Progress | bool | None = None,
    **options: Any,
) -> Projection:
    """Project the rows of `x` (N x D: a torch tensor on any device/dtype, or an array)
    to `dims` (2 or 3) dimensions with `method`:

    - ``"pca"`` (torch, else numpy): exact SVD for small inputs, randomised above
      `pca.RANDOMIZED_ABOVE` values; options ``solver`` (auto/full/randomized), ``backend``.
    - ``"tsne"`` (openTSNE, ``pip install 'deepscope[tsne]'``): ``perplexity`` (30, at most
      (N-1)/3), ``n_iter`` (500), ``early_exaggeration_iter`` (250), ``exaggeration``,
      ``metric`` (euclidean/cosine), ``gradient`` (auto: FFT from 10,000 points in 2-D,
      else Barnes-Hut), ``n_jobs`` (auto: 1 below 10,000 points, else all cores).
    - ``"umap"`` (umap-learn, ``pip install 'deepscope[umap]'``): ``n_neighbors`` (15),
      ``min_dist`` (0.1), ``metric``, ``n_epochs``.

    The same data, method, options and `seed` give the same coordinates; t-SNE and UMAP
    results are cached in memory (``cache=False`` recomputes). `labels` (length N) colour
    the picture of `Projection.save` / `.show`. `progress(fraction, partial) -> stop` hears
    how far the method is; returning True raises `Cancelled`. ``progress=True`` draws a
    tqdm bar instead (t-SNE by iterations, UMAP by epochs).

    Example:
        >>> p = deepscope.project(features, method="tsne", perplexity=30)  # doctest: +SKIP
        >>> p.save("tsne.png")  # doctest: +SKIP
    """
    import numpy as np

    data = as_matrix(x)
    n = data.shape[0]
    if labels is not None and len(labels) != n:
        raise ProjectionError(f"labels has {len(labels)} entries for {n} points")
    mask = finite_rows(data)
    kept = int(mask.sum())
    params = normalize(method, dims, options, kept)
    key = None
    if cache and method != "pca":
        key = fingerprint(data) + identity(method, dims, seed, params)
        hit = CACHE.get(key)
        if hit is not None:
            return _result(np.array(hit[0]), method, dims, params, seed, n - kept, hit[1], labels)
    rows = data if kept == n else np.ascontiguousarray(data[mask])
    if progress is True or progress is False:
        bar = _Bar(method) if progress and method != "pca" else None
        try:
            coords, extras = METHODS[method].fit(rows, dims, seed, params, bar)
        finally:
            if bar is not None:
                bar.close()
    else:
        coords, extras = METHODS[method].fit(rows, dims, seed, params, progress)
    if extras.pop("stopped", False):
        raise Cancelled(f"{method} was stopped before it finished")
    full = coords if kept == n else _spread(coords, mask, dims)
    if key is not None:
        CACHE.put(key, (full, extras), full.nbytes)
    return _result(np.array(full), method, dims, params, seed, n - kept, extras, labels)


class _Bar:
    """``progress=True``: a tqdm bar (percent done) fed by the method's callback."""

    def __init__(self, method: str) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=100, desc=method, unit="%", leave=False)

    def __call__(self, fraction: float, partial: Any) -> bool:
        self.bar.update(max(0, round(100 * fraction) - self.bar.n))
        return False

    def close(self) -> None:
        self.bar.update(100 - self.bar.n)
        self.bar.close()


def _spread(coords: NDArray[np.float32], mask: NDArray[np.bool_], dims: int) -> NDArray[Any]:
    import numpy as np

    full = np.full((mask.shape[0], dims), np.nan, np.float32)
    full[mask] = coords
    return full


def _result(
    coords: NDArray[np.float32],
    method: str,
    dims: int,
    params: dict[str, Any],
    seed: int,
    dropped: int,
    extras: dict[str, Any],
    labels: Sequence[Any] | None,
) -> Projection:
    extras = dict(extras)
    ev = extras.pop("explained_variance", None)
    ratio = extras.pop("explained_variance_ratio", None)
    return Projection(coords=coords, method=method, dims=dims, params=params, seed=int(seed),
                      dropped=dropped, explained_variance=ev, explained_variance_ratio=ratio,
                      labels=labels, extras=extras)  # fmt: skip
