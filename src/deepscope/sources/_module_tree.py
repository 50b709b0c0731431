"""Module and parameter names of a live model: a ``torch.nn.Module``, or a Keras 3 model on
the torch backend (whose layers are torch modules, but hold their sublayers in Keras lists
rather than as torch children, and their weights in a ``_torch_params`` dict).

For a Keras model the tree is the Keras layer tree, named by Keras layer names
(``conv2d``, ``block/dense_1``), without ``InputLayer``s or Keras internals
(``Sequential._functional``, ``_torch_params``); a parameter is named
``<layer path>.<variable name>`` (``conv2d.kernel``), the way torch names ``fc.weight``, so
graph namespaces, watch tags and overlays agree. For any other module these are exactly
torch's ``named_modules()`` / ``named_parameters()``. Imports neither torch nor keras.

Example:
    >>> import torch
    >>> [n for n, _ in named_parameters(torch.nn.Linear(2, 1))]  # doctest: +SKIP
    ['weight', 'bias']
"""

from __future__ import annotations

from typing import Any

__all__ = ["children", "is_keras", "named_modules", "named_parameters", "own_parameters"]

_KERAS_INTERNAL = {"_torch_params"}
_KERAS_TYPES: dict[type, bool] = {}


def is_keras(module: object) -> bool:
    """True for a Keras 3 layer or model, built in or subclassed (keras is never imported)."""
    cls = type(module)
    known = _KERAS_TYPES.get(cls)
    if known is None:
        known = hasattr(cls, "_flatten_layers") and any(
            c.__module__.startswith("keras.") for c in cls.__mro__
        )
        _KERAS_TYPES[cls] = known
    return known


def children(module: Any) -> list[tuple[str, Any]]:
    """The direct submodules of `module`, each with its name in the tree."""
    if not is_keras(module):
        return list(module.named_children())
    kids: list[tuple[str, Any]] = [
        (str(layer.name), layer)
        for layer in module._flatten_layers(include_self=False, recursive=False)
        if type(layer).__name__ != "InputLayer"
    ]
    for name, child in module.named_children():  # torch modules a Keras layer wraps
        if name not in _KERAS_INTERNAL and not is_keras(child):
            kids.append((name, child))
    return kids


def own_parameters(module: Any) -> list[tuple[str, Any]]:
    """The parameters `module` itself holds (not its submodules'), by short name."""
    if not is_keras(module):
        return list(module.named_parameters(recurse=False))
    variables = [*module._trainable_variables, *module._non_trainable_variables]
    return [(str(v.name), v.value) for v in variables if hasattr(getattr(v, "value", None), "grad")]


def named_modules(model: Any) -> list[tuple[str, Any]]:
    """``(dotted path, module)`` for the root (``""``) and every submodule, once each,
    in pre-order."""
    if not is_keras(model):
        return list(model.named_modules())
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", model)]
    while stack:
        path, module = stack.pop()
        if id(module) in seen:
            continue
        seen.add(id(module))
        out.append((path, module))
        kids = [(f"{path}.{name}" if path else name, m) for name, m in children(module)]
        stack.extend(reversed(kids))
    return out


def named_parameters(model: Any) -> list[tuple[str, Any]]:
    """``(qualified name, parameter)`` for every parameter once (a shared one keeps its
    first name)."""
    if not is_keras(model):
        return list(model.named_parameters())
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()
    for path, module in named_modules(model):
        for name, p in own_parameters(module):
            if id(p) not in seen:
                seen.add(id(p))
                out.append((f"{path}.{name}" if path else name, p))
    return out
