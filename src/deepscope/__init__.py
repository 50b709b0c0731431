"""deepscope: see inside neural networks.

Example:
    >>> import deepscope
    >>> with deepscope.init(logdir="runs", config={"lr": 0.1}) as run:  # doctest: +SKIP
    ...     run.log({"loss": 0.3})

Heavy modules (torch, the server) load lazily: ``import deepscope`` stays fast and changes
nothing in torch. PyTorch is optional (``pip install 'deepscope[torch]'``): serving runs and
viewing model files work without it; live modules, `Run.watch`, `attribute` and the demo
need it and say so.

``deepscope.graph`` is the Graph IR package (``deepscope.graph.Graph``,
``deepscope.graph.serialize``) and is also callable: ``deepscope.graph(model, x)`` is
`deepscope.sources.graph`. It is one object, so no later import can replace the verb with
the package.
"""

from __future__ import annotations

import importlib
import types
from typing import TYPE_CHECKING, Any

from deepscope import graph  # the stdlib-only IR package; made callable below

if TYPE_CHECKING:
    from deepscope.graph.ir import Graph

__version__ = "0.1.0"

# public name -> "module:attribute"; resolved on first access (PEP 562)
_LAZY = {
    "init": "deepscope.tracking.run:init",
    "Run": "deepscope.tracking.run:Run",
    "load_model": "deepscope.sources:load_model",
    "summary": "deepscope.sources.summary:summary",
    "attribute": "deepscope.analysis.attribution:attribute",
    "smooth": "deepscope.analysis.attribution:smooth",
    "activations": "deepscope.analysis.activations:activations",
    "unit_stats": "deepscope.analysis.activations:unit_stats",
    "attention": "deepscope.analysis.attention:attention",
    "weights": "deepscope.analysis.weights:weights",
    "diff": "deepscope.analysis.weights:diff",
    "show": "deepscope.notebook.show:show",
    "project": "deepscope.analysis.projection:project",
    "visualize": "deepscope.analysis.featureviz:visualize",
    "atlas": "deepscope.analysis.featureviz:atlas",
    "explore": "deepscope.workbench:explore",
    "DeepscopeError": "deepscope.errors:DeepscopeError",
    "ModelFormatError": "deepscope.errors:ModelFormatError",
    "UnsafeModelError": "deepscope.errors:UnsafeModelError",
}

__all__ = ["__version__", "graph", *_LAZY]


class _CallableGraphPackage(types.ModuleType):
    """The type of the ``deepscope.graph`` package: a module that is also the graph verb."""

    def __call__(self, model: Any, example_inputs: Any = None, **options: Any) -> Graph:
        """The Graph IR of a live ``nn.Module`` (traced on `example_inputs`), a `Model`, a
        `Graph` or a model file path; see `deepscope.sources.graph`."""
        from deepscope.sources import graph as build_graph

        return build_graph(model, example_inputs, **options)


graph.__class__ = _CallableGraphPackage


# public names that need PyTorch (an optional dependency: ``deepscope[torch]``)
_NEEDS_TORCH = {
    "attribute",
    "smooth",
    "activations",
    "unit_stats",
    "attention",
    "visualize",
    "atlas",
    "explore",
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'deepscope' has no attribute {name!r}")
    if name in _NEEDS_TORCH:
        from deepscope.errors import require

        require("torch", "torch")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
