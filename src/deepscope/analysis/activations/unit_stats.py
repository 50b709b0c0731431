"""`unit_stats(model, loader, layers, top_k=9)`: per-unit statistics over a dataset, streamed.

Each batch runs one forward pass with hooks on the selected layers; for every unit
(channel) the running sums give the mean, standard deviation, maximum and fraction of exact
zeros over every input and position, and a running top-k keeps the inputs that excite the
unit most (an input's score is the unit's maximum over positions). Memory is the running
numbers plus the top-k crops, never the dataset's activations: it does not grow with the
dataset.

Receptive fields (conv units) are found by gradient, not from the layer arithmetic: on the
first batch, the support of d(unit at the centre position)/d(input) over four random
inputs gives the box one position sees, and a position's box is that box moved by the
layer's stride (input size / output size). ReLU and max-pool gating can make the probe
slightly smaller than the theoretical field; padding clips it at the borders.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU())
    >>> data = [torch.rand(4, 1, 8, 8) for _ in range(2)]
    >>> s = unit_stats(net, data, ["1"], top_k=2, progress=False)
    >>> tuple(s["1"].top_indices.shape), s["1"].receptive_field["size"]
    ((3, 2), (3, 3))
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from deepscope.analysis.activations.base import (
    Recorder,
    batch_size,
    prepare_inputs,
    run_model,
    unit_axis,
)
from deepscope.capture.hooks import HookSet
from deepscope.capture.select import Selector
from deepscope.errors import DeepscopeError

__all__ = ["UnitStats", "UnitTable", "unit_stats"]

_CROP_BYTES = 64 * 2**20  # crops kept per layer; above it only the boxes


@dataclass
class UnitTable:
    """One layer's units: `mean`, `std`, `max`, `zero_fraction` (shape (units,)), and per
    unit the `top_values` and `top_indices` (item index in loader order), shape (units,
    min(k, items)), best first (ties keep the earlier input), and, for spatial units, `top_boxes` (y0, y1, x0, x1 of the
    receptive field in the input) and `crops` (the input cut to that box, input layout)."""

    layer: str
    mean: torch.Tensor
    std: torch.Tensor
    max: torch.Tensor
    zero_fraction: torch.Tensor
    count: int
    top_values: torch.Tensor
    top_indices: torch.Tensor
    top_boxes: torch.Tensor | None = None
    crops: list[list[torch.Tensor | None]] | None = None
    receptive_field: dict[str, Any] | None = None

    def rows(self, sort_by: str = "mean", descending: bool = True) -> list[dict[str, Any]]:
        """One dict per unit (unit, mean, std, max, zero_fraction, top indices and values),
        sorted by a column."""
        rows = [
            {
                "unit": u,
                "mean": float(self.mean[u]),
                "std": float(self.std[u]),
                "max": float(self.max[u]),
                "zero_fraction": float(self.zero_fraction[u]),
                "top_indices": [int(i) for i in self.top_indices[u]],
                "top_values": [float(v) for v in self.top_values[u]],
            }
            for u in range(int(self.mean.shape[0]))
        ]
        if sort_by not in rows[0]:
            raise ValueError(f"cannot sort by {sort_by!r}; columns are {', '.join(rows[0])}")
        return sorted(rows, key=lambda r: r[sort_by], reverse=descending)


@dataclass
class UnitStats:
    """`unit_stats` result: one `UnitTable` per captured output, by name."""

    tables: dict[str, UnitTable]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        """Names of the captured outputs."""
        return list(self.tables)

    def __getitem__(self, name: str) -> UnitTable:
        if name not in self.tables:
            raise KeyError(f"no unit statistics for {name!r}; layers are {self.layers}")
        return self.tables[name]


@dataclass
class _Acc:
    axis: int
    spatial: tuple[int, ...]
    sum: torch.Tensor
    sum_sq: torch.Tensor
    max: torch.Tensor
    zeros: torch.Tensor
    count: int = 0
    top_values: torch.Tensor | None = None
    top_indices: torch.Tensor | None = None
    top_pos: torch.Tensor | None = None
    crops: list[list[torch.Tensor | None]] | None = None
    batch_score: torch.Tensor | None = None
    batch_pos: torch.Tensor | None = None


class _Stream(Recorder):
    def __init__(self, model: nn.Module, layers: Any, top_k: int) -> None:
        super().__init__(model, layers)
        self.k = top_k
        self.acc: dict[str, _Acc] = {}
        self.batch = 0
        self.skipped: set[str] = set()

    def record(self, name: str, module: nn.Module, tensor: torch.Tensor) -> None:
        if tensor.ndim < 2 or tensor.shape[0] != self.batch:
            self.skipped.add(name)  # not batch-major (an RNN's h_n): no per-input scores
            return
        axis = unit_axis(module, tensor.ndim, self.channels_last) % tensor.ndim
        b, units = int(tensor.shape[0]), int(tensor.shape[axis])
        spatial = tuple(int(s) for i, s in enumerate(tensor.shape) if i not in (0, axis))
        # reduce in the output's own layout (no transposed copy): (B, U, P) or (B, P, U)
        if axis == 1:
            flat, pdim = tensor.reshape(b, units, -1), 2
        else:
            flat, pdim = tensor.reshape(b, -1, units), 1
        if not flat.is_floating_point():
            flat = flat.float()
        positions = int(flat.shape[pdim])
        acc = self.acc.get(name)
        if acc is None:
            zero = torch.zeros(units, dtype=torch.float64)
            acc = _Acc(
                axis, spatial, zero, zero.clone(), torch.full((units,), -torch.inf), zero.clone()
            )
            self.acc[name] = acc
        # per-input sums in the output's dtype (at most P terms each), totals in float64
        acc.sum += flat.sum(pdim).double().sum(0).cpu()
        acc.sum_sq += torch.linalg.vecdot(flat, flat, dim=pdim).double().sum(0).cpu()
        score, pos = flat.max(dim=pdim)
        acc.max = torch.maximum(acc.max, score.max(0).values.float().cpu())
        acc.zeros += (b * positions - torch.count_nonzero(flat, dim=(0, pdim))).double().cpu()
        acc.count += b * positions
        acc.batch_score, acc.batch_pos = score.float().cpu(), pos.cpu()


def _probe_field(
    model: nn.Module, module: nn.Module, x: torch.Tensor, channels_last: bool
) -> dict[str, Any] | None:
    """The receptive field of a 4-D layer's centre position, by input gradient."""
    kept: list[torch.Tensor] = []

    class _Stop(Exception):
        pass

    def hook(_m: nn.Module, _i: tuple[Any, ...], out: Any) -> None:
        kept.append(out if isinstance(out, torch.Tensor) else out[0])
        raise _Stop

    modes = {m: m.training for m in model.modules()}
    probe = torch.randn((4, *x.shape[1:]), dtype=x.dtype, device=x.device, requires_grad=True)
    try:
        model.eval()
        with torch.enable_grad(), HookSet() as hooks:
            hooks.forward(module, hook)
            try:
                run_model(model, probe)
            except _Stop:
                pass
    finally:
        for m, mode in modes.items():
            m.training = mode
    out = kept[0]
    if out.ndim != 4 or not out.requires_grad:
        return None
    out = out.movedim(-1, 1) if channels_last else out
    h, w = int(out.shape[2]), int(out.shape[3])
    cy, cx = h // 2, w // 2
    in_h, in_w = (
        int(probe.shape[-2 if not channels_last else 1]),
        int(probe.shape[-1 if not channels_last else 2]),
    )
    here = _support(out, probe, cy, cx, channels_last, retain=True)
    if here is None:
        return None
    # the stride is how far the box moves for one step of the position (a second probe)
    ny, nx = (cy - 1 if cy > 0 else cy), (cx - 1 if cx > 0 else cx)
    there = _support(out, probe, ny, nx, channels_last, retain=False)
    sy = float(here[0] - there[0]) if there and ny != cy else in_h / h
    sx = float(here[2] - there[2]) if there and nx != cx else in_w / w
    return {
        "method": "gradient",
        "box_at_centre": here,
        "centre": (cy, cx),
        "stride": (sy, sx),
        "size": (here[1] - here[0], here[3] - here[2]),
        "input_size": (in_h, in_w),
    }


def _support(
    out: torch.Tensor, probe: torch.Tensor, y: int, x: int, channels_last: bool, retain: bool
) -> tuple[int, int, int, int] | None:
    """Box (y0, y1, x0, x1) of the inputs whose gradient of position (y, x) is non-zero."""
    (grad,) = torch.autograd.grad(out[:, :, y, x].sum(), probe, retain_graph=retain)
    g = grad.movedim(-1, 1) if channels_last else grad
    support = g.abs().sum((0, 1)) > 0
    ys, xs = torch.nonzero(support.any(1)).flatten(), torch.nonzero(support.any(0)).flatten()
    if ys.numel() == 0:
        return None
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def _box(rf: dict[str, Any], y: int, x: int) -> tuple[int, int, int, int]:
    y0, y1, x0, x1 = rf["box_at_centre"]
    sy, sx = rf["stride"]
    dy, dx = round((y - rf["centre"][0]) * sy), round((x - rf["centre"][1]) * sx)
    h, w = rf["input_size"]
    return max(0, y0 + dy), min(h, y1 + dy), max(0, x0 + dx), min(w, x1 + dx)


def _crop(item: torch.Tensor, box: tuple[int, int, int, int], channels_last: bool) -> torch.Tensor:
    y0, y1, x0, x1 = box
    if channels_last:
        return item[y0:y1, x0:x1].detach().cpu().clone()
    return item[:, y0:y1, x0:x1].detach().cpu().clone()


def _first_input(batch: Any) -> Any:
    if isinstance(batch, (tuple, list)) and not isinstance(batch, Mapping):
        return batch[0]
    return batch


def _merge(
    acc: _Acc, k: int, offset: int, inputs: Any, rf: dict[str, Any] | None, cl: bool
) -> None:
    assert acc.batch_score is not None and acc.batch_pos is not None
    score, pos = acc.batch_score.t(), acc.batch_pos.t()  # (units, batch)
    units, b = score.shape
    new_idx = torch.arange(offset, offset + b).expand(units, b)
    if acc.top_values is None:
        vals, idx, positions = score, new_idx, pos
    else:
        assert acc.top_indices is not None and acc.top_pos is not None
        vals = torch.cat([acc.top_values, score], 1)
        idx = torch.cat([acc.top_indices, new_idx], 1)
        positions = torch.cat([acc.top_pos, pos], 1)
    kk = min(k, vals.shape[1])
    # ties keep the earlier input: a stable sort on the negated score
    order = torch.sort(-vals, dim=1, stable=True).indices[:, :kk]
    old_n = 0 if acc.top_values is None else acc.top_values.shape[1]
    acc.top_values = vals.gather(1, order)
    acc.top_indices = idx.gather(1, order)
    acc.top_pos = positions.gather(1, order)
    acc.batch_score = acc.batch_pos = None
    if rf is None or not isinstance(inputs, torch.Tensor):
        return
    old = acc.crops or [[] for _ in range(units)]
    crops: list[list[torch.Tensor | None]] = []
    w = acc.spatial[1]
    for u in range(units):
        row: list[torch.Tensor | None] = []
        for j in order[u].tolist():
            if j < old_n:
                row.append(old[u][j])
            else:
                p = int(positions[u, j])
                row.append(_crop(inputs[j - old_n], _box(rf, p // w, p % w), cl))
        crops.append(row)
    acc.crops = crops


def unit_stats(
    model: nn.Module,
    loader: Iterable[Any],
    layers: Selector | Iterable[Selector] | None = None,
    top_k: int = 9,
    *,
    progress: bool = True,
) -> UnitStats:
    """Stream `loader` through `model` and summarise every unit of the selected layers.

    Args:
        model: an ``nn.Module`` or a live Keras 3 model (torch backend), run in its current
            mode under ``torch.no_grad()``.
        loader: any iterable of batches: a tensor, a tuple/list whose first element is the
            input (``(x, y)`` from a DataLoader), or a dict of keyword arguments. Item
            indices count inputs in iteration order (the dataset index when not shuffled).
        layers: names, globs, types or modules, as in `activations` (None: every leaf).
        top_k: how many most-exciting inputs to keep per unit.
        progress: show a tqdm progress bar.

    Raises `DeepscopeError` for a loader that yields no items.
    """
    if top_k < 1:
        raise DeepscopeError("top_k must be at least 1")
    rec = _Stream(model, layers, top_k)
    fields: dict[str, dict[str, Any] | None] = {}
    offset = 0
    total = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
    for batch in tqdm(loader, total=total, desc="unit stats", unit="batch", disable=not progress):
        inputs = prepare_inputs(model, _first_input(batch))
        rec.batch = batch_size(inputs)
        if rec.batch == 0:
            continue
        rec.run(inputs)
        for name, acc in rec.acc.items():
            if name not in fields:
                fields[name] = None
                module = _module_of(rec, name)
                if len(acc.spatial) == 2 and isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
                    fields[name] = _probe_field(model, module, inputs, rec.channels_last)
            if acc.batch_score is not None:
                rf = fields[name]
                keep_crops = rf is not None and _crop_bytes(rf, inputs, top_k, acc) <= _CROP_BYTES
                _merge(acc, top_k, offset, inputs, rf if keep_crops else None, rec.channels_last)
        offset += rec.batch
    if offset == 0:
        raise DeepscopeError(
            "the loader gave no inputs (0 items): unit statistics need at least one batch"
        )
    rec.check_ran()
    tables = {name: _table(name, acc, fields.get(name)) for name, acc in rec.acc.items()}
    return UnitStats(tables, {"items": offset, "top_k": top_k, "skipped": sorted(rec.skipped)})


def _module_of(rec: Recorder, name: str) -> nn.Module:
    base = name.split(":")[0].split("@")[0]
    return dict(rec.selected)[base]


def _crop_bytes(rf: dict[str, Any], inputs: torch.Tensor, k: int, acc: _Acc) -> int:
    h, w = rf["size"]
    in_h, in_w = rf["input_size"]
    channels = inputs[0].numel() // max(in_h * in_w, 1)
    return int(h * w * channels * inputs.element_size() * k * acc.sum.shape[0])


def _table(name: str, acc: _Acc, rf: dict[str, Any] | None) -> UnitTable:
    n = max(acc.count, 1)
    mean = acc.sum / n
    std = (acc.sum_sq / n - mean * mean).clamp_min(0).sqrt()
    assert acc.top_values is not None and acc.top_indices is not None
    boxes = None
    if rf is not None and acc.top_pos is not None:
        w = acc.spatial[1]
        boxes = torch.tensor(
            [[_box(rf, int(p) // w, int(p) % w) for p in row] for row in acc.top_pos]
        )
    return UnitTable(
        layer=name,
        mean=mean,
        std=std,
        max=acc.max.double(),
        zero_fraction=acc.zeros / n,
        count=acc.count,
        top_values=acc.top_values,
        top_indices=acc.top_indices,
        top_boxes=boxes,
        crops=acc.crops,
        receptive_field=rf,
    )
