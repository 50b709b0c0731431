"""What every model source returns, and the contract each source module follows.

A source module (one per format, listed explicitly in `deepscope.sources.SOURCES`) has:

    def match(target: object) -> bool      # cheap: suffix / magic bytes / isinstance
    def load(target: object, *, trust: bool = False, **options) -> Model

`load` never executes code from a file unless `trust=True` (docs/threats.md M1-M9).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepscope.graph.ir import Graph


@dataclass(frozen=True)
class WeightInfo:
    """A named tensor from a model file: metadata always, values only when loaded."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    values: Any | None = None  # numpy array (or torch tensor) when loaded; None otherwise


@dataclass
class Model:
    """A loaded model: its graph (possibly empty for weights-only files) and its weights."""

    graph: Graph
    weights: dict[str, WeightInfo] = field(default_factory=dict)
    format: str = ""  # "torch", "onnx", "keras", "safetensors", "state_dict", "torchscript", "pt2"
    notes: list[str] = field(default_factory=list)  # e.g. "structure only: weights not read"
