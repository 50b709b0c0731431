"""The live ``torch.nn.Module`` source: trace a module on example inputs into the Graph IR.

Trace paths, tried in this order by ``trace="auto"`` (the one taken and why the others
failed are recorded in ``graph.meta["trace"]`` and ``graph.meta["traceNotes"]``):

1. ``"fx"``: ``torch.fx`` symbolic tracing plus one recorded forward. Fast (milliseconds),
   and the graph holds the modules and functions the user wrote.
2. ``"hooks"``: one eager forward with module hooks and a ``TorchFunctionMode``. Works for
   any model that runs (data-dependent Python control flow, ``nn.TransformerEncoder``);
   the graph is the path taken for the example inputs.

``"export"`` (``torch.export``, non-strict) is opt-in: it needs seconds rather than
milliseconds, and shows ATen ops; choose it for a shape-generic graph.

Example:
    >>> import torch
    >>> g = graph(torch.nn.Linear(3, 2), torch.zeros(4, 3))  # doctest: +SKIP
    >>> g.groups[""].params, g.meta["trace"]  # doctest: +SKIP
    (8, 'fx')
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

from deepscope.errors import DeepscopeError, ModelFormatError, require
from deepscope.graph.aggregate import aggregate
from deepscope.graph.ir import Graph, ParamRef
from deepscope.sources._module_tree import is_keras, named_parameters
from deepscope.sources.base import Model, WeightInfo

__all__ = ["graph", "load", "match", "split_inputs"]

Tracer = Callable[[Any, tuple[Any, ...], dict[str, Any], dict[int, ParamRef]], Graph]
_ORDER = {"auto": ("fx", "hooks"), "fx": ("fx",), "hooks": ("hooks",), "export": ("export",)}


def match(target: object) -> bool:
    """True for a live ``torch.nn.Module`` (never imports torch itself)."""
    torch = sys.modules.get("torch")  # a module only exists if torch was imported
    return torch is not None and isinstance(target, torch.nn.Module)


def split_inputs(example_inputs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A tensor, a tuple/list of positional inputs, or a dict of keyword inputs -> (args, kwargs)."""
    if example_inputs is None:
        raise DeepscopeError(
            "tracing a torch module needs example inputs: pass example_inputs=torch.randn(1, ...) "
            "(a tensor, a tuple of tensors, or a dict of keyword tensors)"
        )
    if isinstance(example_inputs, dict):
        return (), dict(example_inputs)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs), {}
    return (example_inputs,), {}


def _tracers() -> dict[str, Tracer]:
    from deepscope.sources._torch_export import trace_export
    from deepscope.sources._torch_fx import trace_fx
    from deepscope.sources._torch_hooks import trace_hooks

    return {"fx": trace_fx, "hooks": trace_hooks, "export": trace_export}


def graph(model: Any, example_inputs: Any = None, *, trace: str = "auto") -> Graph:
    """Trace `model` on `example_inputs` into a `Graph` with shapes, params, MACs and groups.

    The model's buffers (BatchNorm running statistics) are restored afterwards; the forward
    runs without autograd unless the model holds transformer layers, whose eval-mode fast
    path would otherwise hide their submodules.
    """
    require("torch", "torch")
    import torch

    from deepscope.sources._torch_trace import module_types, param_table, preserved_state

    if trace not in _ORDER:
        raise ValueError(f"trace must be one of {sorted(_ORDER)}, got {trace!r}")
    args, kwargs = split_inputs(example_inputs)
    params = param_table(model)
    order = _ORDER[trace]
    notes: list[str] = []
    if trace == "auto" and is_keras(model):
        order = ("hooks",)
        notes.append("Keras model: traced with hooks (torch.fx cannot trace Keras layers)")
    tracers = _tracers()
    fast_path = any(
        isinstance(m, (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer))
        for m in model.modules()
    )
    grad: contextlib.AbstractContextManager[Any] = (
        torch.enable_grad() if fast_path else torch.no_grad()
    )
    result: Graph | None = None
    taken = ""
    with preserved_state(model), grad:
        for path in order:
            try:
                result = tracers[path](model, args, kwargs, params)
            except Exception as exc:  # noqa: BLE001 - each failure is recorded, the last raised
                notes.append(
                    f"{path} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
                )
                if path == order[-1]:
                    raise ModelFormatError(
                        f"could not trace {type(model).__name__}: "
                        + "; ".join(notes)
                        + ". Check that the model runs on the example inputs."
                    ) from exc
                continue
            taken = path
            break
    assert result is not None
    used = {p.name for n in result.nodes for p in n.params}
    result.meta = {
        "source": "torch",
        "modelType": type(model).__name__,
        "trace": taken,
        "traceNotes": notes,
        "moduleTypes": module_types(model),
        "unusedParams": [
            {"name": p.name, "shape": list(p.shape), "dtype": p.dtype, "trainable": p.trainable}
            for p in params.values()
            if p.name not in used
        ],
    }
    aggregate(result)
    return result


def load(target: Any, *, trust: bool = False, example_inputs: Any = None, **options: Any) -> Model:
    """A `Model` of a live module: its graph (when `example_inputs` are given) and weights."""
    require("torch", "torch")
    weights = {
        name: WeightInfo(name, tuple(t.shape), str(t.dtype).removeprefix("torch."), t.detach())
        for name, t in [*named_parameters(target), *target.named_buffers()]
    }
    notes: list[str] = []
    if example_inputs is None:
        g = Graph(meta={"source": "torch", "modelType": type(target).__name__})
        notes.append("no example inputs: structure not traced (pass example_inputs=...)")
    else:
        g = graph(target, example_inputs, **options)
    return Model(graph=g, weights=weights, format="torch", notes=notes)
