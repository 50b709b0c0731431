"""The one base of the activations family: a `Recorder` that hooks selected layers for one
forward pass and hands every tensor a layer outputs, by name, to its `record` verb.

Naming: a layer's output tensor is named after the layer (``conv1``); the parts of a tuple,
list or mapping output are named by position or key after a colon (``lstm:0`` for the
sequence, ``lstm:1.0`` for ``h_n``, ``bert:last_hidden_state`` for a Hugging Face
``ModelOutput`` field). A module that runs more than once in a pass (a shared block) gives
one entry per call, ``block@1``, ``block@2``, …; a module that runs once keeps its plain
name. Non-tensor parts (None, ints) are skipped.

Layout: `unit_axis` says which axis of an output holds the units (channels): the last for
Keras (channels-last) and for 2-D and sequence (N, T, F) outputs, axis 1 for torch
outputs of 4 or more dims and for 3-D outputs of ``*1d`` modules (Conv1d, MaxPool1d, …).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from deepscope.capture.hooks import HookSet
from deepscope.capture.select import LayerSelectionError, Selector, is_explicit, select_layers
from deepscope.sources._module_tree import is_keras

__all__ = ["Recorder", "flatten_output", "owned_by", "prepare_inputs", "run_model", "unit_axis"]


def flatten_output(name: str, value: Any) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, tensor)`` for every tensor in a module output, nested parts named by path."""
    if isinstance(value, torch.Tensor):
        yield name, value
        return
    sep = ":" if ":" not in name else "."
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (tuple, list)):
        items = enumerate(value)
    else:
        return
    for key, part in items:
        yield from flatten_output(f"{name}{sep}{key}", part)


def unit_axis(module: nn.Module, ndim: int, channels_last: bool) -> int:
    """The axis of a module's output that holds its units (see the module docstring)."""
    if channels_last or ndim <= 2:
        return ndim - 1
    if ndim >= 4:
        return 1
    return 1 if type(module).__name__.lower().endswith("1d") else ndim - 1


def _model_param(model: nn.Module) -> torch.Tensor | None:
    """The first floating-point parameter (a Keras Dropout's int32 seed state comes first)."""
    return next((p for p in model.parameters() if p.is_floating_point()), None)


def prepare_inputs(model: nn.Module, inputs: Any) -> Any:
    """`inputs` on the model's device, floating tensors in the model's float dtype (numpy
    arrays become tensors; integer tensors such as token ids keep their dtype)."""
    param = _model_param(model)
    if is_keras(model) and param is None:
        weights = getattr(model, "weights", None) or []
        param = next(
            (
                w.value
                for w in weights
                if isinstance(w.value, torch.Tensor) and w.value.is_floating_point()
            ),
            None,
        )

    def move(x: Any) -> Any:
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.ascontiguousarray(x))
        if isinstance(x, torch.Tensor):
            if param is None:
                return x
            dtype = param.dtype if x.is_floating_point() else x.dtype
            return x.to(device=param.device, dtype=dtype)
        if isinstance(x, Mapping):
            return {k: move(v) for k, v in x.items()}
        if isinstance(x, (tuple, list)):
            return type(x)(move(v) for v in x)
        return x

    return move(inputs)


def run_model(model: nn.Module, inputs: Any) -> Any:
    """Call the model on prepared inputs: a mapping as keyword arguments, a tuple as
    positional ones, anything else as the one argument."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def batch_size(inputs: Any) -> int:
    """The leading dimension of the first tensor in `inputs` (0 when there is none)."""
    if isinstance(inputs, torch.Tensor):
        return int(inputs.shape[0]) if inputs.ndim else 1
    values = inputs.values() if isinstance(inputs, Mapping) else inputs
    if isinstance(values, (tuple, list)) or isinstance(inputs, Mapping):
        for v in values:
            n = batch_size(v)
            if n:
                return n
    return 0


class Recorder:
    """Hooks the selected layers; subclasses implement `record(name, module, tensor)`.

    `run(inputs)` does one forward pass with every hook removed afterwards (also when the
    forward raises) and renames the calls of modules that ran more than once.
    """

    def __init__(self, model: nn.Module, layers: Selector | Iterable[Selector] | None) -> None:
        self.model = model
        self.channels_last = is_keras(model)
        self.explicit = layers is not None and all(
            is_explicit(s)
            for s in ([layers] if isinstance(layers, (str, type, nn.Module)) else layers)
        )
        self.selected = select_layers(model, layers)
        self.calls: dict[str, int] = {}
        self.order: list[str] = []
        self.ran: set[str] = set()

    def record(self, name: str, module: nn.Module, tensor: torch.Tensor) -> None:
        """Keep what is needed of one output tensor (overridden)."""
        raise NotImplementedError

    def _hook(self, name: str) -> Any:
        def hook(module: nn.Module, _inputs: tuple[Any, ...], output: Any) -> None:
            n = self.calls.get(name, 0) + 1
            self.calls[name] = n
            call_name = name if n == 1 else f"{name}@{n}"
            if n == 2:
                self.rename_first(name, f"{name}@1")
            if isinstance(output, torch.Tensor):  # the usual case, without the generator
                self.order.append(call_name)
                self.record(call_name, module, output.detach())
                return
            for part, tensor in flatten_output(call_name, output):
                self.order.append(part)
                self.record(part, module, tensor.detach())

        return hook

    def rename_first(self, old: str, new: str) -> None:
        """Rename the entries of a module's first call once it runs a second time."""
        self.order = [new + o[len(old) :] if owned_by(o, old) else o for o in self.order]

    def run(self, inputs: Any) -> Any:
        """One forward pass with the hooks in place; returns the model's output."""
        self.calls = {}
        self.order = []
        with HookSet() as hooks:
            for name, module in self.selected:
                hooks.forward(module, self._hook(name))
            try:
                with torch.no_grad():
                    return run_model(self.model, prepare_inputs(self.model, inputs))
            finally:
                self.ran.update(self.calls)

    def check_ran(self) -> list[str]:
        """Names of selected layers that never ran: an error for layers named one by one,
        a warning (and the list) for globs, types and every-leaf selections."""
        missing = [n for n, _ in self.selected if n not in self.ran]
        if not missing:
            return []
        text = ", ".join(repr(m) for m in missing[:10]) + (" …" if len(missing) > 10 else "")
        msg = (
            f"layer(s) {text} did not run during the forward pass (the model's forward never "
            "calls them for these inputs)"
        )
        if self.explicit or len(missing) == len(self.selected):
            raise LayerSelectionError(msg + "; choose layers that run")
        warnings.warn(msg, stacklevel=3)
        return missing


def owned_by(entry: str, name: str) -> bool:
    """True when `entry` is the output `name` or one of its parts (`name:…`)."""
    return entry == name or entry.startswith(name + ":")
