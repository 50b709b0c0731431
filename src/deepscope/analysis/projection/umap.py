"""UMAP with umap-learn (``pip install 'deepscope[umap]'``), seeded (umap-learn then runs
single-threaded, which is what makes it reproducible). Its first call compiles numba code
(about a minute; set ``NUMBA_CACHE_DIR`` to keep the compiled code between processes).

Progress: umap-learn has no callback, but its layout optimisation steps through its epochs
in a Python loop wrapped in ``umap.layouts.tqdm``. While a fit runs with a `progress`
callback, that name is `_Dispatch` (installed once, per thread: other fits see umap's
own tqdm), which hands the loop to `_Epochs`; it reports
`GRAPH_SHARE` after the neighbour graph and then the fraction of epochs done, at most
every `EVERY_S` seconds; returning True stops at the next epoch. An umap-learn without
that loop still runs, with 0 before and nothing until the result.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
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

__all__ = ["EVERY_S", "GRAPH_SHARE", "UMAP"]

GRAPH_SHARE = 0.1  # the fraction reported when the neighbour graph is built
EVERY_S = 0.2
_INSTALL_LOCK = threading.Lock()


class _Stop(Exception):
    """Raised inside umap-learn's epoch loop when `progress` asks to stop."""


class _Epochs:
    """Stands in for tqdm around umap-learn's epoch loop: reports and can stop."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.last = 0.0

    def __call__(self, iterable: Iterable[int], **_: Any) -> Iterator[int]:
        items = list(iterable)
        total = max(1, len(items))
        for i, item in enumerate(items):
            now = time.monotonic()
            if i == 0 or now - self.last >= EVERY_S:
                self.last = now
                done = GRAPH_SHARE + (1 - GRAPH_SHARE) * i / total
                if self.progress(min(done, 0.999), None):
                    raise _Stop
            yield item


class _Dispatch:
    """Installed once as ``umap.layouts.tqdm``: the calling thread's `_Epochs` when a fit
    with a progress callback runs on it, else umap-learn's own tqdm."""

    def __init__(self, original: Any) -> None:
        self.original = original

    def __call__(self, iterable: Iterable[int], **kwds: Any) -> Any:
        epochs = getattr(_LOCAL, "epochs", None)
        return epochs(iterable) if epochs is not None else self.original(iterable, **kwds)


_LOCAL = threading.local()


@contextlib.contextmanager
def _epoch_hook(progress: Progress | None) -> Iterator[None]:
    layouts: Any = None
    if progress is not None:
        try:
            layouts = importlib.import_module("umap.layouts")
        except ImportError:  # pragma: no cover - a umap-learn laid out differently
            layouts = None
    if layouts is None or progress is None or not hasattr(layouts, "tqdm"):
        yield
        return
    with _INSTALL_LOCK:
        if not isinstance(layouts.tqdm, _Dispatch):
            layouts.tqdm = _Dispatch(layouts.tqdm)
    _LOCAL.epochs = _Epochs(progress)
    try:
        yield
    finally:
        _LOCAL.epochs = None


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
            try:
                with _epoch_hook(progress):
                    coords = reducer.fit_transform(x)
            except _Stop:
                return np.zeros((x.shape[0], dims), np.float32), {"stopped": True}
        return np.ascontiguousarray(coords, dtype=np.float32), {"stopped": False}


UMAP = _UMAP()
