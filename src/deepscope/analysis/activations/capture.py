"""`activations(model, inputs, layers)`: every selected layer's output for one forward pass.

Memory is bounded: each output is copied to the CPU once, sliced to the items kept; with
`max_bytes` only the first N items of the batch are kept, N chosen so that all kept outputs
fit, and the result says so (``result.meta["kept_items"]`` and a warning). With
``keep="stats"`` no tensor is kept, only per-unit statistics (mean, std, min, max, fraction
of zeros) over the batch and positions.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    >>> acts = activations(net, torch.rand(2, 1, 8, 8))
    >>> acts.layers, tuple(acts["0"].shape)
    (['0', '1'], (2, 4, 6, 6))
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn

from deepscope.analysis.activations.base import Recorder, batch_size, owned_by, unit_axis
from deepscope.analysis.activations.result import Activations, LayerStats
from deepscope.capture.select import Selector
from deepscope.errors import DeepscopeError

__all__ = ["activations"]


class _Capture(Recorder):
    def __init__(
        self,
        model: nn.Module,
        layers: Selector | Iterable[Selector] | None,
        keep: str,
        max_bytes: int | None,
        batch: int,
    ) -> None:
        super().__init__(model, layers)
        self.keep = keep
        self.max_bytes = max_bytes
        self.batch = batch
        self.n = batch
        self.item_bytes = 0
        self.tensors: dict[str, torch.Tensor] = {}
        self.batched: set[str] = set()
        self.stats: dict[str, LayerStats] = {}
        self.types: dict[str, str] = {}
        self.axes: dict[str, int] = {}

    def record(self, name: str, module: nn.Module, tensor: torch.Tensor) -> None:
        self.types[name] = type(module).__name__
        self.axes[name] = unit_axis(module, tensor.ndim, self.channels_last)
        if self.keep == "stats":
            self.stats[name] = LayerStats.of(tensor, self.axes[name])
            return
        batched = tensor.ndim > 0 and tensor.shape[0] == self.batch
        if batched and self.max_bytes is not None:
            per_item = tensor[:1].numel() * tensor.element_size()
            self.item_bytes += per_item
            n = min(self.n, self.max_bytes // max(self.item_bytes, 1))
            if 0 < n < self.n:
                self.n = n
                self.finish()  # earlier outputs shrink now, so the cap holds at every step
            self.n = n
            if self.n == 0:
                raise DeepscopeError(
                    f"max_bytes={self.max_bytes} is less than one input's activations "
                    f"({self.item_bytes} bytes up to layer {name!r}); raise max_bytes, "
                    "select fewer layers, or use keep='stats'"
                )
        part = tensor[: self.n] if batched and self.n < self.batch else tensor
        self.tensors[name] = part.to("cpu", copy=True)
        if batched:
            self.batched.add(name)

    def rename_first(self, old: str, new: str) -> None:
        super().rename_first(old, new)
        stores: tuple[dict[str, Any], ...] = (self.tensors, self.stats, self.types, self.axes)
        self.batched = {new + b[len(old) :] if owned_by(b, old) else b for b in self.batched}
        for store in stores:
            for key in [k for k in store if k == old or k.startswith(old + ":")]:
                store[new + key[len(old) :]] = store.pop(key)

    def finish(self) -> None:
        """Trim the outputs kept before the cap tightened to the final item count."""
        for name, t in self.tensors.items():
            if name in self.batched and t.shape[0] > self.n:
                self.tensors[name] = t[: self.n].clone()


def activations(
    model: nn.Module,
    inputs: Any,
    layers: Selector | Iterable[Selector] | None = None,
    *,
    keep: Literal["all", "stats"] = "all",
    max_bytes: int | None = None,
) -> Activations:
    """Run `model` once on `inputs` and return what the selected layers output.

    Args:
        model: an ``nn.Module``, or a live Keras 3 model on the torch backend (its layers
            are torch modules; under the TensorFlow or JAX backends they are not, and this
            raises). The model runs in its current mode (call ``model.eval()`` first for
            dropout and batch norm) under ``torch.no_grad()``.
        inputs: a tensor or numpy array (one argument), a tuple (positional arguments) or a
            dict (keyword arguments, e.g. a tokenizer's output), on any device and dtype:
            they are moved to the model's device and floating tensors to its dtype.
        layers: None (every leaf module), or names, globs (``"features.*"``), module types
            (``nn.Conv2d``) or module objects; see `deepscope.capture.select.select_layers`.
        keep: ``"all"`` keeps every output tensor (on the CPU); ``"stats"`` keeps only
            per-unit statistics (`LayerStats`), a few numbers per channel.
        max_bytes: cap on the bytes of kept tensors: only the first N items of the batch are
            kept (``result.meta["kept_items"]``), with a warning when N is less than the batch.

    Tuple and mapping outputs are kept part by part (``"lstm:0"``, ``"lstm:1.0"``,
    ``"bert:last_hidden_state"``); a module called twice gives ``"block@1"`` and
    ``"block@2"``. Every hook is removed when this returns or raises.
    """
    if keep not in ("all", "stats"):
        raise DeepscopeError(f"keep must be 'all' or 'stats', not {keep!r}")
    if max_bytes is not None and max_bytes <= 0:
        raise DeepscopeError("max_bytes must be a positive number of bytes")
    if not isinstance(model, nn.Module):
        raise DeepscopeError(
            f"activations need a torch nn.Module or a Keras 3 model on the torch backend "
            f"(KERAS_BACKEND=torch), not {type(model).__name__}"
        )
    batch = batch_size(inputs) or 1
    rec = _Capture(model, layers, keep, max_bytes, batch)
    rec.run(inputs)
    rec.finish()
    not_run = rec.check_ran()
    meta: dict[str, Any] = {
        "batch": batch,
        "kept_items": rec.n if keep == "all" else 0,
        "keep": keep,
        "layout": "channels_last" if rec.channels_last else "channels_first",
        "not_run": not_run,
    }
    if keep == "all":  # outputs whose first axis is not the batch (an RNN's h_n)
        meta["not_batched"] = [n for n in rec.tensors if n not in rec.batched]
    if max_bytes is not None:
        meta["max_bytes"] = max_bytes
        meta["bytes"] = sum(t.numel() * t.element_size() for t in rec.tensors.values())
        if rec.n < batch and keep == "all":
            warnings.warn(
                f"max_bytes={max_bytes} keeps the first {rec.n} of {batch} inputs' activations",
                stacklevel=2,
            )
    order = list(dict.fromkeys(rec.order))
    return Activations(
        layers=order,
        tensors=rec.tensors,
        stats=rec.stats,
        unit_axes=rec.axes,
        module_types=rec.types,
        meta=meta,
    )
