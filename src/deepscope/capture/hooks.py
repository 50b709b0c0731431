"""Hook sets that are always removed, and a forward pass that records autograd only after a layer.

Every hook deepscope registers goes through a `HookSet` used as a context manager, so no hook
outlives the call that needed it, whether that call returns or raises.

Example:
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU())
    >>> seen = []
    >>> with HookSet() as hooks:
    ...     hooks.forward(model[0], lambda m, i, o: seen.append(o.shape))
    ...     _ = model(torch.zeros(2, 3))
    >>> seen, len(model[0]._forward_hooks)
    ([torch.Size([2, 4])], 0)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

ForwardHook = Callable[[nn.Module, tuple[Any, ...], Any], Any]
Transform = Callable[[torch.Tensor], torch.Tensor]


class HookSet:
    """Registers module hooks and removes every one of them on `remove()` or on leaving `with`."""

    def __init__(self) -> None:
        self._handles: list[RemovableHandle] = []

    def forward(self, module: nn.Module, fn: ForwardHook) -> None:
        """Call `fn(module, inputs, output)` after `module` runs; a non-None return replaces the output."""
        self._handles.append(module.register_forward_hook(fn))

    def forward_pre(
        self, module: nn.Module, fn: Callable[[nn.Module, tuple[Any, ...]], Any]
    ) -> None:
        """Call `fn(module, inputs)` before `module` runs."""
        self._handles.append(module.register_forward_pre_hook(fn))

    def add(self, handle: RemovableHandle) -> None:
        """Take charge of a handle registered elsewhere (e.g. a hook `with_kwargs`)."""
        self._handles.append(handle)

    def remove(self) -> None:
        """Remove every hook registered so far (safe to call twice)."""
        while self._handles:
            self._handles.pop().remove()

    def __enter__(self) -> HookSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()


def _is_keras(model: Any) -> bool:
    return any(c.__module__.startswith("keras.") for c in type(model).__mro__)


def _keras_children(layer: Any) -> list[nn.Module]:
    children = layer._flatten_layers(include_self=False, recursive=False)
    return [c for c in children if type(c).__name__ != "InputLayer"]


def named_layers(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """`(name, module)` for every submodule, the model itself excluded.

    Torch models give `named_modules()` names ("features.3"). A live Keras 3 model (torch
    backend: its layers are torch modules, but kept outside `named_modules()`) gives its
    layers by name, nested ones as "block/conv".
    """
    if not _is_keras(model):
        yield from ((name, module) for name, module in model.named_modules() if name)
        return

    def walk(layer: Any, prefix: str) -> Iterator[tuple[str, nn.Module]]:
        for child in _keras_children(layer):
            name = f"{prefix}{child.name}"
            yield name, child
            yield from walk(child, f"{name}/")

    yield from walk(model, "")


def find_module(model: nn.Module, layer: nn.Module | str) -> tuple[nn.Module, str]:
    """Return `(module, name)` for a module object or a name inside `model` (dotted for torch
    submodules, a Keras layer's name or "block/conv" path for Keras models)."""
    layers = {"": model, **dict(named_layers(model))}
    if isinstance(layer, str):
        if layer not in layers:
            keras = _is_keras(model)
            hint = "[layer.name for layer in model.layers]" if keras else "model.named_modules()"
            raise ValueError(f"model has no layer named {layer!r}; see {hint}")
        return layers[layer], layer
    for name, module in layers.items():
        if module is layer:
            return module, name
    raise ValueError("the layer given is not a submodule of the model")


def _first_index(value: Any) -> Any:
    """Key (mapping) or index (tuple/list) of the first tensor in a module output, else None."""
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, (tuple, list)):
        items = enumerate(value)
    else:
        return None
    return next((k for k, v in items if isinstance(v, torch.Tensor)), None)


def find_tensor(value: Any) -> torch.Tensor | None:
    """The tensor a module returned, or the first tensor of a tuple/list (RNNs, attention
    blocks) or of a mapping such as a Hugging Face `ModelOutput` (its first tensor field);
    None when there is none. The one rule for "a module's output tensor" in deepscope."""
    if isinstance(value, torch.Tensor):
        return value
    key = _first_index(value)
    if key is None:
        return None
    tensor: torch.Tensor = value[key]
    return tensor


def first_tensor(value: Any) -> torch.Tensor:
    """`find_tensor`, raising `TypeError` when the output holds no tensor."""
    tensor = find_tensor(value)
    if tensor is None:
        raise TypeError(f"expected a tensor output, got {type(value).__name__} with no tensor")
    return tensor


def _replace_first(value: Any, tensor: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor):
        return tensor
    key = _first_index(value)
    if isinstance(value, Mapping):
        out: Any = copy.copy(value)  # a ModelOutput stays a ModelOutput (item and attribute)
        out[key] = tensor
        return out
    items = list(value)
    items[key] = tensor
    if hasattr(value, "_make"):  # namedtuple
        return value._make(items)
    return type(value)(items)


def forward_from_layer(
    model: nn.Module,
    layer: nn.Module,
    inputs: Any,
    transform: Transform | None = None,
    *,
    track: bool = True,
) -> tuple[Any, torch.Tensor]:
    """Run `model(inputs)`, making `layer`'s output a fresh leaf that requires grad.

    Autograd records nothing before `layer` (the pass up to it runs under `no_grad`) and,
    when `track` is true, everything after it, so the gradient of the output with respect
    to the returned leaf costs a backward through the head of the network only, and no
    parameter gradients. `transform` maps the layer's output before the rest of the model
    sees it (interpolation for integrated gradients). The leaf's clone is what flows on, so
    an in-place op after the layer leaves the leaf intact. Hooks are removed and grad mode
    restored whatever happens.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
        >>> out, act = forward_from_layer(net, net[0], torch.ones(1, 3))
        >>> torch.autograd.grad(out.sum(), act)[0].shape
        torch.Size([1, 4])
    """
    leaves: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: tuple[Any, ...], output: Any) -> Any:
        if leaves:
            raise ValueError("the attribution layer ran more than once in one forward pass")
        value = first_tensor(output).detach()
        if transform is not None:
            value = transform(value)
        leaf = value.detach().requires_grad_(track)
        leaves.append(leaf)
        torch.set_grad_enabled(track)
        return _replace_first(output, leaf.clone() if track else leaf)

    previous = torch.is_grad_enabled()
    try:
        with HookSet() as hooks:
            hooks.forward(layer, hook)
            torch.set_grad_enabled(False)
            output = model(inputs)
            if not leaves:
                # fused inference paths (nn.TransformerEncoderLayer) skip submodules when
                # autograd is off; with it on they run them
                torch.set_grad_enabled(True)
                output = model(inputs)
    finally:
        torch.set_grad_enabled(previous)
    if not leaves:
        raise ValueError("the attribution layer did not run during the forward pass")
    return output, leaves[0]
