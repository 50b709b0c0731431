"""The Graph IR: one neutral description of a model's structure for every source and view.

Imports the standard library only (no torch): the dashboard reads graphs without torch.

Example:
    >>> g = Graph(nodes=[Node(id="n0", op="linear", label="fc", namespace="fc")])
    >>> g.node("n0").op
    'linear'

Wire format: `deepscope.graph.serialize.to_json` writes these dataclasses as JSON with
camelCase keys and a top-level ``schemaVersion``; `from_json` reads them back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1

Shape = tuple[int | None, ...]  # a None dimension is dynamic / unknown


@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of one tensor flowing along an edge (either may be unknown)."""

    shape: Shape | None = None
    dtype: str | None = None  # "float32", "int64", "bfloat16", ...


@dataclass(frozen=True)
class ParamRef:
    """A parameter (weight) used by a node. Shared parameters keep one `name`."""

    name: str  # fully qualified, e.g. "layer1.0.conv1.weight"
    shape: tuple[int, ...]
    dtype: str
    trainable: bool = True

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Node:
    """One operation. `namespace` is the module path ("layer1/0/conv1", "" at top level);
    each prefix of it is a collapsible group in the views."""

    id: str
    op: str  # normalised op name: "conv2d", "linear", "relu", "add", "matmul", ...
    label: str = ""
    namespace: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)  # JSON-safe values only
    inputs: list[TensorMeta] = field(default_factory=list)
    outputs: list[TensorMeta] = field(default_factory=list)
    params: list[ParamRef] = field(default_factory=list)
    macs: int = 0  # multiply-accumulates of this node for the traced inputs


@dataclass(frozen=True)
class Edge:
    """Output `src_output` of node `src` feeds input `dst_input` of node `dst`."""

    src: str
    dst: str
    src_output: int = 0
    dst_input: int = 0
    tensor: TensorMeta | None = None


@dataclass
class GroupStats:
    """Aggregates of one namespace prefix (a module and everything under it)."""

    namespace: str
    module_type: str = ""  # e.g. "BasicBlock"; the layout cache key in the dashboard
    params: int = 0  # unique parameters: a shared parameter counts once
    trainable_params: int = 0
    frozen_params: int = 0
    macs: int = 0
    op_count: int = 0
    output_shapes: list[Shape | None] = field(default_factory=list)


@dataclass
class Graph:
    """A model's structure. `inputs`/`outputs` are node ids of the graph's inputs/outputs.

    `groups` maps a namespace to its `GroupStats` (filled by `graph.aggregate.aggregate`);
    `overlays` maps an overlay name (e.g. "grad_norm") to per-node values by node id;
    `meta` records provenance: source format, trace path taken ("fx", "export", "hooks"),
    notes such as "weights not loaded".
    """

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    groups: dict[str, GroupStats] = field(default_factory=dict)
    overlays: dict[str, dict[str, float | None]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def node(self, node_id: str) -> Node:
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    def set_overlay(self, name: str, values: dict[str, float | None]) -> None:
        """Attach per-node values (e.g. gradient norms) for the dashboard to colour by."""
        self.overlays[name] = dict(values)
