"""The ``activations`` view kind: one layer's output for one input item.

An item is a small JSON main blob (per-channel minimum and maximum) with `ActivationsMeta`,
plus one array part ``maps`` joined by ``meta.entry`` (``"<layer>#<index>"``): the item's
output as float32 (or float16) in one of three layouts, named by ``meta.layout``:

- ``"chw"``: channels × height × width (spatial outputs; channels-last outputs are moved so
  the channel axis comes first),
- ``"tokens_units"``: tokens × units (sequences: a 3-D output whose unit axis is last),
- ``"units"``: a flat vector of units (anything else).

`log_activations` writes an `Activations` result (`deepscope.activations`) through
`deepscope.views.registry.write`; ``run.log_activations`` calls it; ``/api/views/activations``
serves it; the frontend draws it with the ``activations`` panel. Only the result's public API
is read (``layers``, ``result[name]``, ``unit_axes``, ``module_types``), and torch is not
imported here: tensors are read with ``.detach().cpu().numpy()``.

Example:
    >>> from deepscope.views import registry
    >>> registry.get("activations").parts["maps"].dtypes
    ('float32', 'float16')
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from deepscope.errors import DeepscopeError, require
from deepscope.views.registry import BlobWriter, Part, PartRef, ViewKind, register, write
from deepscope.views.schema import open_keys

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "KIND",
    "ActivationsItem",
    "ActivationsMeta",
    "ActivationsParts",
    "ActivationsView",
    "item_array",
    "log_activations",
]

Layout = Literal["chw", "tokens_units", "units"]


@open_keys
class ActivationsMeta(TypedDict):
    """What is logged with each layer output of one input item."""

    entry: str
    layer: str
    index: int
    batch: int
    shape: list[int]
    layout: Literal["chw", "tokens_units", "units"]
    module: str
    min: float
    max: float
    format: Literal["json"]


class ActivationsParts(TypedDict):
    """The array of one layer output (null when not logged)."""

    maps: PartRef | None


class ActivationsItem(TypedDict):
    """One layer's output for one input item."""

    id: int
    tag: str
    step: int
    wallTime: float
    format: Literal["json"]
    url: str
    meta: ActivationsMeta
    parts: ActivationsParts


class ActivationsView(TypedDict):
    """``/api/views/activations``: every logged layer output of a run (oldest first)."""

    kind: Literal["activations"]
    run: str
    items: list[ActivationsItem]
    skipped: int


KIND = register(
    ViewKind(
        name="activations",
        panel="activations",
        meta=ActivationsMeta,
        item=ActivationsItem,
        response=ActivationsView,
        formats=("json",),
        parts={"maps": Part("activations_maps", "array", ("float32", "float16"))},
        key="entry",
    )
)


def item_array(tensor: Any, unit_axis: int, index: int) -> tuple[NDArray[Any], Layout]:
    """Item `index` of a captured output (batch first) in the kind's layout: C×H×W for
    spatial outputs, tokens × units for sequences, a unit vector otherwise."""
    require("numpy", "arrays")
    import numpy as np

    arr = np.asarray(tensor.detach().cpu().float().numpy() if hasattr(tensor, "detach") else tensor)
    if arr.ndim == 0:
        return arr.reshape(1).astype(np.float32), "units"
    if not 0 <= index < arr.shape[0]:
        raise DeepscopeError(f"item {index} is out of range: {arr.shape[0]} items were kept")
    axis = unit_axis % arr.ndim
    one = arr[index]
    if arr.ndim == 4:  # spatial: channels first
        return np.ascontiguousarray(np.moveaxis(one, axis - 1, 0), np.float32), "chw"
    if arr.ndim == 3 and axis == 2:  # a sequence: tokens × units
        return np.ascontiguousarray(one, np.float32), "tokens_units"
    if arr.ndim >= 3:  # channels first with extra axes: flatten them as a strip per unit
        moved = np.moveaxis(one, axis - 1, 0)
        return np.ascontiguousarray(moved.reshape(moved.shape[0], -1), np.float32), "tokens_units"
    return np.ascontiguousarray(one.reshape(-1), np.float32), "units"


def _finite_range(arr: NDArray[Any]) -> tuple[float, float]:
    import numpy as np

    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def _channel_ranges(arr: NDArray[Any], layout: Layout) -> dict[str, list[float | None]]:
    import numpy as np

    if layout == "units":
        return {"channelMin": [], "channelMax": []}
    flat = arr.reshape(arr.shape[0], -1) if layout == "chw" else arr.T
    lo: list[float | None] = []
    hi: list[float | None] = []
    for row in flat:
        finite = row[np.isfinite(row)]
        lo.append(float(finite.min()) if finite.size else None)
        hi.append(float(finite.max()) if finite.size else None)
    return {"channelMin": lo, "channelMax": hi}


def log_activations(
    run: BlobWriter,
    tag: str,
    result: Any,
    step: int | None = None,
    *,
    layers: Sequence[str] | None = None,
    items: Iterable[int] | None = None,
    dtype: Literal["float32", "float16"] = "float32",
) -> int:
    """Log `result` (an `Activations`) as ``activations`` items: one per layer in `layers`
    (default: every captured layer kept with ``keep="all"``) and input item in `items`
    (default: every kept item); return how many were written. `dtype` ``"float16"`` halves
    the stored bytes (values beyond ±65504 become ±inf)."""
    if dtype not in ("float32", "float16"):
        raise DeepscopeError(f"dtype must be 'float32' or 'float16', not {dtype!r}")
    names = list(result.layers) if layers is None else list(layers)
    tensors: dict[str, Any] = {}
    for name in names:
        try:
            tensors[name] = result[name]
        except KeyError as exc:
            raise DeepscopeError(str(exc.args[0]) if exc.args else str(exc)) from None
    if layers is None and not tensors:
        raise DeepscopeError("the result holds no tensors: capture with keep='all' to log them")
    unit_axes = getattr(result, "unit_axes", {})
    types = getattr(result, "module_types", {})
    written = 0
    for name, tensor in tensors.items():
        batch = int(tensor.shape[0]) if tensor.ndim > 0 else 1
        for index in range(batch) if items is None else items:
            arr, layout = item_array(tensor, int(unit_axes.get(name, 1)), int(index))
            lo, hi = _finite_range(arr)
            meta = {
                "entry": f"{name}#{int(index)}",
                "layer": name,
                "index": int(index),
                "batch": batch,
                "shape": [int(n) for n in arr.shape],
                "layout": layout,
                "module": str(types.get(name, "")),
                "min": lo if math.isfinite(lo) else 0.0,
                "max": hi if math.isfinite(hi) else 0.0,
            }
            doc = json.dumps(_channel_ranges(arr, layout)).encode()
            part = arr.astype(dtype)
            write(run, "activations", tag, doc, ext="json", meta=meta, parts={"maps": part},
                  step=step)  # fmt: skip
            written += 1
    return written
