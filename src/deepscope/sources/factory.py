"""Resolve ``package.module:factory`` to a live ``nn.Module``. This imports and runs the
user's own Python code on purpose (the command line says so); model *files* never do.

Example:
    >>> is_factory_spec("mypkg.models:build")
    True
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any

from deepscope.errors import DeepscopeError, require

__all__ = ["example_inputs", "is_factory_spec", "parse_shape", "resolve_factory", "target_graph"]

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


def is_factory_spec(text: str) -> bool:
    """True for ``package.module:attr`` (and not for an existing file such as ``C:model.onnx``)."""
    return bool(_SPEC.match(text)) and not Path(text).exists()


def resolve_factory(spec: str) -> Any:
    """Import ``package.module`` (the current directory is importable) and return
    ``attr`` called with no arguments when it is a function or class, or as is when it is
    already a module instance."""
    if not _SPEC.match(spec):
        raise DeepscopeError(f"'{spec}' is not 'package.module:factory'")
    require("torch", "torch")  # a factory builds a torch.nn.Module
    module_name, attr = spec.split(":", 1)
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise DeepscopeError(
            f"cannot import '{module_name}' for '{spec}': {exc}. Run from the folder that "
            "holds the package, or install it"
        ) from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise DeepscopeError(f"'{module_name}' has no attribute '{attr}' ({spec})") from exc
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj
    if callable(obj):
        obj = obj()
    if not isinstance(obj, torch.nn.Module):
        raise DeepscopeError(
            f"'{spec}' returned a {type(obj).__name__}, not a torch.nn.Module: point it at a "
            "function that builds and returns the model"
        )
    return obj


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,3,224,224"`` (or ``"1x3x224x224"``) -> ``(1, 3, 224, 224)``.

    Every size must be a whole number of at least 1: zero, negative and empty sizes are a
    `DeepscopeError` (the one check every command uses, through `--input-shape`).
    """
    parts = [p.strip() for p in text.replace("x", ",").split(",")]
    if parts and parts[-1] == "":
        parts.pop()  # a trailing comma, as in "8,"
    ok = bool(parts) and all(p.isascii() and p.isdigit() and int(p) >= 1 for p in parts)
    if not ok:
        raise DeepscopeError(
            f"--input-shape '{text}' needs sizes of at least 1 separated by commas, "
            "e.g. 1,3,224,224"
        )
    return tuple(int(p) for p in parts)


def example_inputs(shapes: list[str], dtype: str = "float32") -> Any:
    """Random float (or zero integer) tensors of the given shapes: one tensor or a tuple."""
    import torch

    tdtype = getattr(torch, dtype, None)
    if not isinstance(tdtype, torch.dtype):
        raise DeepscopeError(
            f"--dtype '{dtype}' is not a torch dtype (float32, float16, int64, ...)"
        )
    gen = torch.Generator().manual_seed(0)
    tensors = [
        torch.randn(parse_shape(s), generator=gen).to(tdtype)
        if tdtype.is_floating_point
        else torch.zeros(parse_shape(s), dtype=tdtype)
        for s in shapes
    ]
    return tensors[0] if len(tensors) == 1 else tuple(tensors)


def target_graph(spec: str, shapes: list[str], dtype: str = "float32", trust: bool = False) -> Any:
    """The Graph of a model file (via `load_model`) or of ``package.module:factory`` traced on
    inputs of `shapes`. Weights-only files give a params-only graph."""
    from deepscope.graph.aggregate import aggregate
    from deepscope.sources import graph, load_model
    from deepscope.sources.summary import weights_graph

    if is_factory_spec(spec):
        model = resolve_factory(spec)
        if not shapes:
            raise DeepscopeError(
                f"'{spec}' is a Python model: pass --input-shape (e.g. --input-shape 1,3,224,224)"
            )
        return graph(model, example_inputs(shapes, dtype))
    loaded = load_model(spec, trust=trust)
    g = loaded.graph
    if not g.nodes and loaded.weights:
        return weights_graph(loaded.weights, loaded.format or "Model")
    if not g.groups:
        aggregate(g)
    return g
