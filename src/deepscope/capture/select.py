"""Layer selectors: which modules of a model to hook, by name, glob, type or object.

Names are those of `deepscope.sources._module_tree.named_modules`: torch's dotted
``named_modules()`` paths (``features.3``) for an ``nn.Module``, Keras layer names
(``conv2d``, ``block.dense_1``) for a live Keras 3 model on the torch backend, so graph
namespaces, watch tags and captured activations agree.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU())
    >>> [name for name, _ in select_layers(net, None)]
    ['0', '1']
    >>> [name for name, _ in select_layers(net, torch.nn.ReLU)]
    ['1']
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterable
from typing import Any

from torch import nn

from deepscope.errors import DeepscopeError
from deepscope.sources._module_tree import children, named_modules

__all__ = ["LayerSelectionError", "Selector", "is_explicit", "leaf_layers", "select_layers"]

#: one selector: a name, a glob (``"features.*"``), a module type, or a module object
Selector = str | type | nn.Module

_GLOB = set("*?[")


class LayerSelectionError(DeepscopeError, ValueError):
    """A layer selector matches nothing, or a selected layer never ran."""


def leaf_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` for every module without submodules (the model itself when it has
    none), in definition order."""
    named = named_modules(model)
    leaves = [(n, m) for n, m in named if n and not children(m)]
    return leaves or [("", model)]


def is_explicit(selector: Any) -> bool:
    """True for a plain name or a module object: selectors that name exactly one layer."""
    return isinstance(selector, nn.Module) or (
        isinstance(selector, str) and not (_GLOB & set(selector))
    )


def _as_list(layers: Selector | Iterable[Selector] | None) -> list[Selector] | None:
    if layers is None:
        return None
    if isinstance(layers, (str, type, nn.Module)):
        return [layers]
    return list(layers)


def _close(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    if close:
        return "close matches: " + ", ".join(repr(c) for c in close)
    shown = ", ".join(repr(n) for n in names[:12]) + (" …" if len(names) > 12 else "")
    return f"layers are: {shown}"


def select_layers(
    model: nn.Module, layers: Selector | Iterable[Selector] | None
) -> list[tuple[str, nn.Module]]:
    """The modules `layers` selects, each once, in the model's definition order.

    `layers` is None (every leaf module), or one or a list of: an exact name, a glob
    (``"features.*"``, matched with `fnmatch` against every name), a module type
    (``nn.Conv2d``: every module that is an instance), or a module object of the model.
    A name, glob or type that matches nothing raises `LayerSelectionError` listing close
    matches, so a typo is never an empty result.
    """
    selectors = _as_list(layers)
    if selectors is None:
        return leaf_layers(model)
    named = [(n, m) for n, m in named_modules(model) if n]
    names = [n for n, _ in named]
    chosen: set[str] = set()
    for sel in selectors:
        if isinstance(sel, str):
            if _GLOB & set(sel):
                hits = [n for n in names if fnmatch.fnmatchcase(n, sel)]
            else:
                hits = [sel] if sel in names else []
            if not hits:
                raise LayerSelectionError(
                    f"no layer matches {sel!r}; {_close(sel, names)} "
                    "(names are those of model.named_modules(), or Keras layer names)"
                )
        elif isinstance(sel, type):
            hits = [n for n, m in named if isinstance(m, sel)]
            if not hits:
                raise LayerSelectionError(f"the model has no layer of type {sel.__name__}")
        elif isinstance(sel, nn.Module):
            hits = [n for n, m in named if m is sel]
            if not hits:
                raise LayerSelectionError("the module given is not a submodule of the model")
        else:
            raise LayerSelectionError(
                f"a layer selector is a name, a glob, a module type or a module, "
                f"not {type(sel).__name__}"
            )
        chosen.update(hits)
    return [(n, m) for n, m in named if n in chosen]
