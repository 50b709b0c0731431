"""PCA: exact SVD for small inputs, a randomised range finder (Halko et al. 2011) with
implicit centring for large ones; torch when installed, numpy otherwise (the dashboard's
worker has no torch). Components are sign-normalised (each one's largest-magnitude loading
is positive), so the same data gives the same picture every time.

Example:
    >>> import numpy as np
    >>> coords, extras = PCA.fit(np.eye(4, dtype=np.float32), 2, 0, {"solver": "full"}, None)
    >>> coords.shape, len(extras["explained_variance"])
    ((4, 2), 2)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deepscope.analysis.projection.base import Progress, ProjectionError, check_keys

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["PCA", "RANDOMIZED_ABOVE"]

RANDOMIZED_ABOVE = 4_000_000
"""Above this many values (N x D) the ``"auto"`` solver is randomised, below it exact."""
_OVERSAMPLE = 10
_POWER_ITERATIONS = 2
_DEFAULTS = {"solver": "auto", "backend": "auto"}


class _PCA:
    name = "pca"

    def normalize(self, params: Mapping[str, Any], n: int, dims: int) -> dict[str, Any]:
        check_keys("pca", params, _DEFAULTS)
        out = {**_DEFAULTS, **params}
        if out["solver"] not in ("auto", "full", "randomized"):
            raise ProjectionError("pca option 'solver' is 'auto', 'full' or 'randomized'")
        if out["backend"] not in ("auto", "torch", "numpy"):
            raise ProjectionError("pca option 'backend' is 'auto', 'torch' or 'numpy'")
        if n < 2:
            raise ProjectionError(f"PCA needs at least 2 finite points, got {n}")
        return out

    def fit(
        self,
        x: NDArray[np.float32],
        dims: int,
        seed: int,
        params: Mapping[str, Any],
        progress: Progress | None,
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        import numpy as np

        n, d = x.shape
        solver = params.get("solver", "auto")
        if solver == "auto":
            solver = (
                "randomized"
                if n * d > RANDOMIZED_ABOVE and min(n, d) > dims + 2 * _OVERSAMPLE
                else "full"
            )
        backend = params.get("backend", "auto")
        if backend == "auto":
            backend = "torch" if importlib.util.find_spec("torch") is not None else "numpy"
        k = min(dims, n, d)
        fit = _torch_fit if backend == "torch" else _numpy_fit
        coords, components, variance, total = fit(x, k, seed, solver == "randomized")
        signs = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
        signs[signs == 0] = 1.0
        coords = coords * signs
        if k < dims:  # fewer components than asked (D or N too small): pad with zeros
            coords = np.concatenate([coords, np.zeros((n, dims - k), np.float32)], axis=1)
        extras = {
            "solver": solver,
            "backend": backend,
            "explained_variance": [float(v) for v in variance],
            "explained_variance_ratio": [float(v / total) if total > 0 else 0.0 for v in variance],
        }
        return np.ascontiguousarray(coords, np.float32), extras


PCA = _PCA()


def _torch_fit(
    x: NDArray[np.float32], k: int, seed: int, randomized: bool
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32], float]:
    import torch

    a = torch.from_numpy(x)
    n = a.shape[0]
    mean = a.mean(0)
    if randomized:
        total = _total_var(a, mean)
        gen = torch.Generator().manual_seed(int(seed))
        q = k + _OVERSAMPLE
        omega = torch.randn(a.shape[1], q, generator=gen)
        y = a @ omega - (mean @ omega)  # (X - 1 mean) @ omega without copying X
        for _ in range(_POWER_ITERATIONS):
            y = _orthonormal(y)
            z = _orthonormal(a.T @ y - torch.outer(mean, y.sum(0)))
            y = a @ z - (mean @ z)
        basis = _orthonormal(_orthonormal(y))  # twice: orthogonal to float precision
        b = basis.T @ a - torch.outer(basis.sum(0), mean)  # q x D
        _u, s, vt = torch.linalg.svd(b, full_matrices=False)
    else:
        _u, s, vt = torch.linalg.svd(a - mean, full_matrices=False)
        total = float((s.double() ** 2).sum() / (n - 1))
    components = vt[:k]
    coords = a @ components.T - (mean @ components.T)
    variance = (s[:k] ** 2) / (n - 1)
    return coords.numpy(), components.numpy(), variance.numpy(), total


def _total_var(a: Any, mean: Any) -> float:
    """Sum of column variances in one chunked pass (centred chunks, no full-size copy)."""
    import torch

    rows = max(1, 2**22 // a.shape[1])
    total = 0.0
    for i in range(0, a.shape[0], rows):
        total += float(torch.linalg.vector_norm(a[i : i + rows] - mean)) ** 2
    return float(total / (a.shape[0] - 1))


def _orthonormal(y: Any) -> Any:
    """An orthonormal basis of the columns of tall-thin `y`: Cholesky QR (two thin passes,
    much faster than Householder QR on 100k rows), Householder when `y` is rank deficient."""
    import torch

    r, info = torch.linalg.cholesky_ex(y.T @ y, upper=True)
    if int(info) != 0:
        return torch.linalg.qr(y)[0]
    return torch.linalg.solve_triangular(r, y, upper=True, left=False)


def _numpy_fit(
    x: NDArray[np.float32], k: int, seed: int, randomized: bool
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32], float]:
    import numpy as np

    n = x.shape[0]
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    sq = np.einsum("ij,ij->j", x, x, dtype=np.float64)
    total = float((sq - n * mean.astype(np.float64) ** 2).sum() / (n - 1))
    if randomized:
        rng = np.random.default_rng(int(seed))
        omega = rng.standard_normal((x.shape[1], k + _OVERSAMPLE)).astype(np.float32)
        y = x @ omega - mean @ omega
        for _ in range(_POWER_ITERATIONS):
            y, _r = np.linalg.qr(y)
            z, _r = np.linalg.qr(x.T @ y - np.outer(mean, y.sum(0)))
            y = x @ z - mean @ z
        basis, _r = np.linalg.qr(y)
        _u, s, vt = np.linalg.svd(basis.T @ x - np.outer(basis.sum(0), mean), full_matrices=False)
    else:
        _u, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    components = vt[:k].astype(np.float32)
    coords = x @ components.T - mean @ components.T
    variance = (s[:k].astype(np.float64) ** 2) / (n - 1)
    return coords, components, variance.astype(np.float32), total
