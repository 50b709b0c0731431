"""deepscope: see inside neural networks.

Example:
    >>> import deepscope
    >>> with deepscope.init(logdir="runs", config={"lr": 0.1}) as run:  # doctest: +SKIP
    ...     run.log({"loss": 0.3})

Heavy modules (torch, the server) load lazily: ``import deepscope`` stays fast and changes
nothing in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"; resolved on first access (PEP 562)
_LAZY = {
    "init": "deepscope.tracking.run:init",
    "Run": "deepscope.tracking.run:Run",
    "load_model": "deepscope.sources:load_model",
    "graph": "deepscope.sources:graph",
    "summary": "deepscope.sources.summary:summary",
    "attribute": "deepscope.analysis.attribution:attribute",
    "smooth": "deepscope.analysis.attribution:smooth",
    "DeepscopeError": "deepscope.errors:DeepscopeError",
    "ModelFormatError": "deepscope.errors:ModelFormatError",
    "UnsafeModelError": "deepscope.errors:UnsafeModelError",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'deepscope' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
