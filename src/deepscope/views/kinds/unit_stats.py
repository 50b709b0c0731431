"""The ``unit_stats`` view kind: one layer's per-unit statistics over a dataset.

An item is one layer of a `UnitStats` result (`deepscope.unit_stats`): a JSON main blob with
one column per statistic (``mean``, ``std``, ``max``, ``zeroFraction``, each a list over
units) and the top-k inputs of every unit (``topIndices``, ``topValues``: units × k, best
first), with `UnitStatsMeta`, plus one array part ``crops`` joined by ``meta.entry`` (the
layer name): the receptive-field crops of the top-k inputs as float32, shape
units × k × channels × height × width (channels first; a crop cut short by the input's border
is padded with NaN on the side the border cut). Layers without spatial units have no crops.

`log_unit_stats` writes a result through `deepscope.views.registry.write`;
``run.log_unit_stats`` calls it; the Activations panel draws the table of the layer shown.
Only the result's public API is read (``layers``, ``result[name]`` → `UnitTable`), and torch
is not imported here.

Example:
    >>> from deepscope.views import registry
    >>> registry.get("unit_stats").key
    'entry'
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from deepscope.errors import DeepscopeError, require
from deepscope.views.registry import BlobWriter, Part, PartRef, ViewKind, register, write
from deepscope.views.schema import open_keys

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "KIND",
    "UnitStatsItem",
    "UnitStatsMeta",
    "UnitStatsParts",
    "UnitStatsView",
    "crops_array",
    "log_unit_stats",
]


@open_keys
class UnitStatsMeta(TypedDict):
    """What is logged with each layer's unit table."""

    entry: str
    layer: str
    units: int
    count: int
    topK: int
    items: int
    format: Literal["json"]
    fieldSize: NotRequired[list[int]]


class UnitStatsParts(TypedDict):
    """The top-k crops of one layer (null for non-spatial units)."""

    crops: PartRef | None


class UnitStatsItem(TypedDict):
    """One layer's unit table."""

    id: int
    tag: str
    step: int
    wallTime: float
    format: Literal["json"]
    url: str
    meta: UnitStatsMeta
    parts: UnitStatsParts


class UnitStatsView(TypedDict):
    """``/api/views/unit_stats``: every logged unit table of a run (oldest first)."""

    kind: Literal["unit_stats"]
    run: str
    items: list[UnitStatsItem]
    skipped: int


KIND = register(
    ViewKind(
        name="unit_stats",
        panel="activations",
        meta=UnitStatsMeta,
        item=UnitStatsItem,
        response=UnitStatsView,
        formats=("json",),
        parts={"crops": Part("unit_stats_crops", "array", ("float32",))},
        key="entry",
    )
)


def _numpy(t: Any) -> NDArray[Any]:
    import numpy as np

    return np.asarray(t.detach().cpu().double().numpy() if hasattr(t, "detach") else t)


def _col(t: Any) -> list[Any]:
    """A column as JSON numbers (non-finite values become null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v if math.isfinite(v) else None

    out: list[Any] = clean(_numpy(t).tolist())
    return out


def crops_array(
    crops: Sequence[Sequence[Any]],
    size: Sequence[int],
    boxes: Any = None,
    input_size: Sequence[int] | None = None,
) -> NDArray[Any] | None:
    """The crops of a `UnitTable` (units × k, each channels × h × w, or h × w × channels)
    as one float32 array units × k × channels × H × W, NaN where a crop is missing or cut
    short by the input's border (with `boxes` (y0, y1, x0, x1) and the `input_size`, a crop
    cut at the top or left border sits at the bottom or right of its cell); None when there
    are none."""
    require("numpy", "arrays")
    import numpy as np

    found = [c for row in crops for c in row if c is not None]
    if not found:
        return None
    first = _numpy(found[0])
    last = first.ndim == 3 and first.shape[0] not in (1, 3, 4) and first.shape[-1] in (1, 3, 4)
    channels = (first.shape[-1] if last else first.shape[0]) if first.ndim == 3 else 1
    h, w = int(size[0]), int(size[1])
    k = max(len(row) for row in crops)
    out = np.full((len(crops), k, channels, h, w), np.nan, dtype=np.float32)
    for u, row in enumerate(crops):
        for j, crop in enumerate(row):
            if crop is None:
                continue
            c = _numpy(crop)
            c = c.reshape(1, *c.shape) if c.ndim == 2 else (np.moveaxis(c, -1, 0) if last else c)
            c = c[:, :h, :w]
            ch, ch_h, ch_w = c.shape
            oy = ox = 0
            if boxes is not None and input_size is not None:
                y0, y1, x0, x1 = (int(v) for v in boxes[u][j])
                oy = h - ch_h if y0 == 0 and y1 < int(input_size[0]) else 0
                ox = w - ch_w if x0 == 0 and x1 < int(input_size[1]) else 0
            out[u, j, :ch, oy : oy + ch_h, ox : ox + ch_w] = c
    return out


def log_unit_stats(
    run: BlobWriter,
    tag: str,
    stats: Any,
    step: int | None = None,
    *,
    layers: Sequence[str] | None = None,
) -> int:
    """Log `stats` (a `UnitStats`) as ``unit_stats`` items, one per layer in `layers`
    (default: every layer); return how many were written."""
    require("numpy", "arrays")
    names = list(stats.layers) if layers is None else list(layers)
    meta_all = getattr(stats, "meta", {}) or {}
    for name in names:
        try:
            table = stats[name]
        except KeyError as exc:
            raise DeepscopeError(str(exc.args[0]) if exc.args else str(exc)) from None
        values = _numpy(table.top_values)
        doc = {
            "mean": _col(table.mean),
            "std": _col(table.std),
            "max": _col(table.max),
            "zeroFraction": _col(table.zero_fraction),
            "topIndices": _numpy(table.top_indices).astype(int).tolist(),
            "topValues": _col(values),
        }
        meta: dict[str, Any] = {
            "entry": name,
            "layer": name,
            "units": len(doc["mean"]),
            "count": int(table.count),
            "topK": int(values.shape[1]) if values.ndim == 2 else 0,
            "items": int(meta_all.get("items", 0)),
        }
        parts: dict[str, Any] = {}
        rf = table.receptive_field
        if table.crops is not None and rf is not None:
            boxes = None if table.top_boxes is None else _numpy(table.top_boxes).astype(int)
            crops = crops_array(table.crops, rf["size"], boxes, rf.get("input_size"))
            if crops is not None:
                parts["crops"] = crops
                meta["fieldSize"] = [int(n) for n in rf["size"]]
        data = json.dumps(doc, allow_nan=False).encode()
        write(run, "unit_stats", tag, data, ext="json", meta=meta, parts=parts, step=step)
    return len(names)
