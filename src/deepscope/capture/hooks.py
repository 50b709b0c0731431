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

from collections.abc import Callable
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


def find_module(model: nn.Module, layer: nn.Module | str) -> tuple[nn.Module, str]:
    """Return `(module, dotted_name)` for a module object or a dotted name inside `model`."""
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules:
            raise ValueError(f"model has no layer named {layer!r}; see model.named_modules()")
        return modules[layer], layer
    for name, module in model.named_modules():
        if module is layer:
            return module, name
    raise ValueError("the layer given is not a submodule of the model")


def first_tensor(value: Any) -> torch.Tensor:
    """The tensor a module returned, or the first tensor of a tuple/list output (RNNs)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)) and value and isinstance(value[0], torch.Tensor):
        return value[0]
    raise TypeError(f"expected a tensor output, got {type(value).__name__}")


def _replace_first(value: Any, tensor: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor):
        return tensor
    return type(value)([tensor, *value[1:]])


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
