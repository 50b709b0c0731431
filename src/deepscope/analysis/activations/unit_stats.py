"""`unit_stats(model, loader, layers, top_k=9)`: per-unit statistics over a dataset, streamed.

Each batch runs one forward pass with hooks on the selected layers; for every unit
(channel) the running sums give the mean, standard deviation, maximum and fraction of exact
zeros over every input and position, and a running top-k keeps the inputs that excite the
unit most (an input's score is the unit's maximum over positions). Memory is the running
numbers plus the top-k crops, never the dataset's activations: it does not grow with the
dataset (``meta["state_bytes"]`` says how much it is; crops clipped at the input's border
are smaller, so it varies a little with which inputs win, up to units × k full crops).

Cost per batch and layer: four vectorised reductions over positions (max, sum, 2-norm and
a count of non-zeros written into a reused buffer), copied to the host in one go; the
top-k merge runs only when some input beats a unit's current k-th score, and argmax
positions and crops are computed only for the inputs that enter a top-k.

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

from deepscope.analysis.activations.base import Recorder, batch_size, prepare_inputs, unit_axis
from deepscope.analysis.activations.receptive import box, crop, probe_field
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

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """A notebook shows this result as its dashboard panel (`deepscope.show`)."""
        from deepscope.notebook.show import mimebundle

        return mimebundle(self, **kwargs)

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
    # set by a merge that let new inputs in: (units whose top-k changed, the merge order
    # into [old top-k | batch], the old top-k width); the crops are cut after the pass
    pending: tuple[list[int], torch.Tensor, int] | None = None

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor this accumulator holds, in any attribute, list or tuple (for
        `_Stream.state_bytes`)."""
        held: list[torch.Tensor] = []
        todo: list[Any] = list(vars(self).values())
        while todo:
            value = todo.pop()
            if isinstance(value, torch.Tensor):
                held.append(value)
            elif isinstance(value, (list, tuple)):
                todo.extend(value)
        return held


_EXACT_COUNT = 2**24  # float32 counts 0/1 values exactly below this many per row


class _Stream(Recorder):
    """Per batch and layer: four reductions over positions (max, sum, norm, non-zeros),
    copied to the host in one go, and a top-k merge that only runs when an input beats a
    unit's current k-th score; argmax positions are computed for the inputs that enter."""

    def __init__(self, model: nn.Module, layers: Any, top_k: int) -> None:
        super().__init__(model, layers)
        self.k = top_k
        self.acc: dict[str, _Acc] = {}
        self.batch = 0
        self.offset = 0
        self.skipped: set[str] = set()
        self._scratch: torch.Tensor | None = None

    def _buffer(self, like: torch.Tensor) -> torch.Tensor:
        """A reused buffer shaped like `like` (a fresh one per batch costs page faults)."""
        buf = self._scratch
        n = like.numel()
        if buf is None or buf.numel() < n or buf.dtype != like.dtype or buf.device != like.device:
            buf = self._scratch = torch.empty(n, dtype=like.dtype, device=like.device)
        return buf[:n].view(like.shape)

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
        # per-input (B, U) reductions in float32, each one vectorised pass over the output;
        # non-zeros as the sum of (x != 0) written as floats (count_nonzero and a bool sum are
        # several times slower; NaN counts as non-zero, as in count_nonzero)
        f32 = torch.float32
        score = flat.amax(pdim).to(f32)
        sums = flat.sum(pdim, dtype=f32)
        if flat.dtype == f32:  # (a dtype argument takes a slower path)
            norm = torch.linalg.vector_norm(flat, dim=pdim)
        else:
            norm = torch.linalg.vector_norm(flat, dim=pdim, dtype=f32)
        nonzero = torch.ne(flat, 0, out=self._buffer(flat)).sum(pdim, dtype=f32)  # 0/1 floats
        host = torch.stack([score, sums, norm * norm, nonzero]).cpu()  # one copy to the host
        counts = host[3]
        if positions >= _EXACT_COUNT:
            counts = torch.count_nonzero(flat, dim=pdim).to(f32).cpu()
        acc.sum += host[1].sum(0, dtype=torch.float64)
        acc.sum_sq += host[2].sum(0, dtype=torch.float64)
        acc.max = torch.maximum(acc.max, host[0].amax(0))
        acc.zeros += b * positions - counts.sum(0, dtype=torch.float64)
        acc.count += b * positions
        self._merge(acc, flat, pdim, host[0].t())

    def _merge(self, acc: _Acc, flat: torch.Tensor, pdim: int, score: torch.Tensor) -> None:
        """Merge one batch's (units, batch) scores into the running top-k."""
        units, b = score.shape
        old_n = 0 if acc.top_values is None else int(acc.top_values.shape[1])
        if acc.top_values is not None and old_n == self.k:
            kth = acc.top_values[:, -1:]
            # nothing beats the k-th (ties keep the earlier input): the top-k stays as is
            if not bool(torch.isnan(kth).any()) and not bool((score > kth).any()):
                return
        new_idx = torch.arange(self.offset, self.offset + b).expand(units, b)
        if acc.top_values is None:
            vals, idx = score, new_idx
        else:
            assert acc.top_indices is not None
            vals = torch.cat([acc.top_values, score], 1)
            idx = torch.cat([acc.top_indices, new_idx], 1)
        kk = min(self.k, int(vals.shape[1]))
        # ties keep the earlier input: a stable sort on the negated score
        order = torch.sort(-vals, dim=1, stable=True).indices[:, :kk]
        entered = order >= old_n
        u_in, slot_in = entered.nonzero(as_tuple=True)
        b_dev, u_dev = (order[u_in, slot_in] - old_n).to(flat.device), u_in.to(flat.device)
        rows = flat[b_dev, u_dev] if pdim == 2 else flat[b_dev, :, u_dev]
        if acc.top_pos is None:
            positions = torch.zeros(units, kk, dtype=torch.int64)
        else:
            positions = acc.top_pos.gather(1, order.clamp(max=old_n - 1))
        positions[u_in, slot_in] = rows.argmax(1).cpu()
        acc.top_values = vals.gather(1, order)
        acc.top_indices = idx.gather(1, order)
        acc.top_pos = positions
        acc.pending = (entered.any(1).nonzero().flatten().tolist(), order, old_n)

    def state_bytes(self) -> int:
        """Bytes of the streaming state (sums, top-k values, indices, positions and crops),
        counted by the storages the tensors keep alive: it must not grow with the data."""
        return sum(t.untyped_storage().nbytes() for acc in self.acc.values() for t in acc.tensors())


def _first_input(batch: Any) -> Any:
    if isinstance(batch, (tuple, list)) and not isinstance(batch, Mapping):
        return batch[0]
    return batch


def _cut_crops(acc: _Acc, inputs: torch.Tensor, rf: dict[str, Any], cl: bool) -> None:
    """Cut the receptive-field crops of the inputs that entered a unit's top-k this batch."""
    assert acc.pending is not None and acc.top_pos is not None
    changed, order, old_n = acc.pending
    if acc.crops is None:
        if old_n:
            return  # crops were not kept for the earlier batches: keep none
        acc.crops = [[] for _ in range(int(order.shape[0]))]
    w = acc.spatial[1]
    for u in changed:
        old = acc.crops[u]
        row: list[torch.Tensor | None] = []
        for slot, j in enumerate(order[u].tolist()):
            if j < old_n:
                row.append(old[j])
            else:
                p = int(acc.top_pos[u, slot])
                row.append(crop(inputs[j - old_n], box(rf, p // w, p % w), cl))
        acc.crops[u] = row


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
        rec.offset = offset
        rec.run(inputs)
        for name, acc in rec.acc.items():
            if name not in fields:
                fields[name] = None
                module = _module_of(rec, name)
                if len(acc.spatial) == 2 and isinstance(inputs, torch.Tensor) and inputs.ndim == 4:
                    fields[name] = probe_field(model, module, inputs, rec.channels_last)
            if acc.pending is not None:
                rf = fields[name]
                if (
                    rf is not None
                    and isinstance(inputs, torch.Tensor)
                    and _crop_bytes(rf, inputs, top_k, acc) <= _CROP_BYTES
                ):
                    _cut_crops(acc, inputs, rf, rec.channels_last)
                acc.pending = None
        offset += rec.batch
    if offset == 0:
        raise DeepscopeError(
            "the loader gave no inputs (0 items): unit statistics need at least one batch"
        )
    rec.check_ran()
    tables = {name: _table(name, acc, fields.get(name)) for name, acc in rec.acc.items()}
    meta = {
        "items": offset,
        "top_k": top_k,
        "skipped": sorted(rec.skipped),
        "state_bytes": rec.state_bytes(),
    }
    return UnitStats(tables, meta)


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
            [[box(rf, int(p) // w, int(p) % w) for p in row] for row in acc.top_pos]
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
