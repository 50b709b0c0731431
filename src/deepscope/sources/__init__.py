"""Model sources: one module per format, listed explicitly in `SOURCES`.

Each source module has ``match(target) -> bool`` and ``load(target, *, trust=False, **options)
-> Model`` (see `deepscope.sources.base`). Modules are imported by name on first use, so a
missing optional source never breaks the others, and importing this package imports no torch.

Example:
    >>> import deepscope.sources as sources
    >>> sources.SOURCES[0]
    'deepscope.sources.torch_module'
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from deepscope.errors import ModelFormatError, NotFoundError, OptionalDependencyError
from deepscope.graph.ir import Graph
from deepscope.sources.base import Model, WeightInfo

__all__ = ["SOURCES", "Model", "WeightInfo", "graph", "load_model", "source_modules"]

# Tried in this order; the live-module source first, then files by their own `match`.
SOURCES: list[str] = [
    "deepscope.sources.torch_module",
    "deepscope.sources.onnx_file",
    "deepscope.sources.keras_file",
    "deepscope.sources.safetensors_file",
    "deepscope.sources.torchscript_file",
    "deepscope.sources.state_dict",
]

FILE_FORMATS = ".onnx, .keras, .h5, .safetensors, .pt/.pth/.bin (state dict), .pt2 / TorchScript"


def source_modules() -> list[ModuleType]:
    """The source modules that import in this installation, in `SOURCES` order."""
    mods: list[ModuleType] = []
    for name in SOURCES:
        try:
            mods.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.startswith("deepscope"):
                continue  # that source is not part of this build
            if exc.name == "numpy":  # the base install (serve) has none
                raise OptionalDependencyError(
                    "reading model files needs numpy: pip install 'deepscope[onnx]' (or the "
                    "extra of your format: keras, safetensors, torch)"
                ) from exc
            raise
    return mods


def _is_live_module(target: object) -> bool:
    torch = sys.modules.get("torch")  # a module only exists if torch was imported
    return torch is not None and isinstance(target, torch.nn.Module)


def load_model(path: Any, trust: bool = False, **options: Any) -> Model:
    """Open a model file (or a live ``nn.Module``) with the first source whose `match` accepts it.

    `trust=False` (the default) never executes code from the file. Raises `NotFoundError`
    for a missing path and `ModelFormatError` for a format no source reads.
    """
    if _is_live_module(path):
        from deepscope.sources.torch_module import load

        return load(path, trust=trust, **options)
    if not isinstance(path, (str, os.PathLike)):
        no_torch = sys.modules.get("torch") is None and importlib.util.find_spec("torch") is None
        raise ModelFormatError(
            f"cannot load a {type(path).__name__}: pass a model file path or a torch.nn.Module"
            + (" (PyTorch is not installed: pip install 'deepscope[torch]')" if no_torch else "")
        )
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"model file not found: {p}")
    for mod in source_modules():
        if mod.__name__.endswith(".torch_module"):
            continue
        if mod.match(p):
            model: Model = mod.load(p, trust=trust, **options)
            return model
    suffix = "".join(p.suffixes) or "(no extension)"
    raise ModelFormatError(
        f"no deepscope source reads '{p.name}' (format {suffix}). Supported: {FILE_FORMATS}. "
        "Export the model to ONNX or safetensors, or pass a Python factory as "
        "'package.module:function' on the command line."
    )


def graph(model: Any, example_inputs: Any = None, **options: Any) -> Graph:
    """The Graph IR of a live ``nn.Module`` (traced on `example_inputs`), a `Model`, a `Graph`
    or a model file path."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, Model):
        return model.graph
    if _is_live_module(model):
        from deepscope.sources.torch_module import graph as trace

        return trace(model, example_inputs, **options)
    return load_model(model, **options).graph
