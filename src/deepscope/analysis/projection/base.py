"""What every projection method shares: input checks, dropped rows, the method contract.

A method is one small module with a `Method` object: `normalize(params, n, dims)` fills the
defaults and refuses bad options with a message that says what to do, and
`fit(x, dims, seed, params, progress)` returns the coordinates of the (finite) rows it is
given plus extras (PCA's explained variance). `deepscope.project` does the rest: reading
tensors, dropping NaN/Inf rows, caching and the `Projection` result.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from deepscope.errors import DeepscopeError, OptionalDependencyError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "Method",
    "Progress",
    "ProjectionError",
    "as_matrix",
    "finite_rows",
    "need",
]

Progress = Callable[[float, "NDArray[np.float32] | None"], bool]
"""``progress(fraction, partial_coords_or_None) -> stop``: a method calls it now and then
(t-SNE with a partial layout every few hundred iterations); returning True stops it."""


class ProjectionError(DeepscopeError):
    """The data or options cannot be projected as asked (the message says what to change)."""

    http_status = 422


class Method(Protocol):
    """One projection method (see the module docstring)."""

    name: str

    def normalize(self, params: Mapping[str, Any], n: int, dims: int) -> dict[str, Any]: ...

    def fit(
        self,
        x: NDArray[np.float32],
        dims: int,
        seed: int,
        params: Mapping[str, Any],
        progress: Progress | None,
    ) -> tuple[NDArray[np.float32], dict[str, Any]]: ...


def need(module: str, extra: str) -> None:
    """`OptionalDependencyError` with ``pip install 'deepscope[extra]'`` unless `module`
    can be imported (checked before any heavy import)."""
    if importlib.util.find_spec(module) is None:
        raise OptionalDependencyError(
            f"this projection needs the '{module}' package: pip install 'deepscope[{extra}]'"
        )


def as_matrix(x: Any) -> NDArray[np.float32]:
    """`x` (a torch tensor on any device and dtype, a numpy array, nested lists) as a
    C-contiguous float32 N x D numpy array (a view when it already is one)."""
    import numpy as np

    if hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu().float().numpy()
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        raise ProjectionError("complex values cannot be projected; pass x.real or abs(x)")
    if arr.dtype.kind not in "biuf":
        raise ProjectionError(f"points must be numbers, not {arr.dtype}")
    if arr.ndim != 2:
        hint = "x.reshape(len(x), -1)" if arr.ndim > 2 else "x.reshape(-1, 1)"
        raise ProjectionError(f"points must be an N x D matrix, got shape {arr.shape}; try {hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ProjectionError(f"nothing to project: shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def finite_rows(x: NDArray[np.float32]) -> NDArray[np.bool_]:
    """True for the rows with no NaN or infinity (the rows a method sees)."""
    import numpy as np

    if np.isfinite(x.sum(axis=1, dtype=np.float64)).all():  # one fast pass when all are
        return np.ones(x.shape[0], dtype=bool)
    mask: NDArray[np.bool_] = np.asarray(np.isfinite(x).all(axis=1))
    return mask


def check_keys(name: str, params: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    """`ProjectionError` naming the accepted options when `params` has another key."""
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ProjectionError(f"{name} has no option {unknown[0]!r}; options: {sorted(known)}")


def number(name: str, value: Any, lo: float, hi: float, *, integer: bool = False) -> Any:
    """`value` checked to be a (integer) number in [lo, hi]."""
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise ProjectionError(f"option {name!r} must be {kind} in [{lo:g}, {hi:g}], got {value!r}")
    return int(value) if integer else float(value)
