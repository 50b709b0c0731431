"""UMAP with umap-learn (``pip install 'deepscope[umap]'``), seeded (umap-learn then runs
single-threaded, which is what makes it reproducible). umap-learn has no progress hook:
`progress` hears 0 before and nothing until the result. Its first call compiles numba code
(about a minute; set ``NUMBA_CACHE_DIR`` to keep the compiled code between processes).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deepscope.analysis.projection.base import (
    Progress,
    ProjectionError,
    check_keys,
    need,
    number,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["UMAP"]

_DEFAULTS: dict[str, Any] = {
    "n_neighbors": 15,
    "min_dist": 0.1,
    "metric": "euclidean",
    "n_epochs": None,
}


class _UMAP:
    name = "umap"

    def normalize(self, params: Mapping[str, Any], n: int, dims: int) -> dict[str, Any]:
        check_keys("umap", params, _DEFAULTS)
        out = {**_DEFAULTS, **params}
        out["n_neighbors"] = number("n_neighbors", out["n_neighbors"], 2, 10_000, integer=True)
        out["min_dist"] = number("min_dist", out["min_dist"], 0, 10)
        if out["metric"] not in ("euclidean", "cosine"):
            raise ProjectionError("umap option 'metric' is 'euclidean' or 'cosine'")
        if out["n_epochs"] is not None:
            out["n_epochs"] = number("n_epochs", out["n_epochs"], 1, 100_000, integer=True)
        if n <= out["n_neighbors"]:
            raise ProjectionError(
                f"UMAP with n_neighbors={out['n_neighbors']} needs more than that many finite "
                f"points, got {n}; pass n_neighbors={max(2, n - 1)} or use PCA"
            )
        if n <= dims + 1:
            raise ProjectionError(f"UMAP needs more than {dims + 1} points, got {n}; use PCA")
        return out

    def fit(
        self,
        x: NDArray[np.float32],
        dims: int,
        seed: int,
        params: Mapping[str, Any],
        progress: Progress | None,
    ) -> tuple[NDArray[np.float32], dict[str, Any]]:
        need("umap", "umap")
        import numpy as np

        if progress is not None and progress(0.0, None):
            return np.zeros((x.shape[0], dims), np.float32), {"stopped": True}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", numba notes
            import umap as umap_learn

            reducer = umap_learn.UMAP(
                n_components=dims,
                n_neighbors=params["n_neighbors"],
                min_dist=params["min_dist"],
                metric=params["metric"],
                n_epochs=params["n_epochs"],
                random_state=int(seed),
            )
            coords = reducer.fit_transform(x)
        return np.ascontiguousarray(coords, dtype=np.float32), {"stopped": False}


UMAP = _UMAP()
