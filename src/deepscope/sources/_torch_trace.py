"""Shared pieces of the three torch trace paths (fx, export, hooks): tensor metadata,
value trees whose leaves are `Ref`s to producing nodes, and a `Builder` that turns
recorded calls into `Node`s and `Edge`s whose shapes agree by construction."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta
from deepscope.graph.namespace import module_namespace
from deepscope.sources._module_tree import children, is_keras, named_modules, named_parameters

__all__ = [
    "Args",
    "Builder",
    "Kwargs",
    "Params",
    "Ref",
    "flatten",
    "is_leaf_module",
    "module_types",
    "param_table",
    "preserved_state",
    "tensor_meta",
    "tree_map",
]


Args = tuple[Any, ...]
"""Positional example inputs of a trace."""
Kwargs = dict[str, Any]
"""Keyword example inputs of a trace."""
Params = dict[int, ParamRef]
"""``id(parameter)`` -> its `ParamRef` (see `param_table`)."""


@dataclass(frozen=True)
class Ref:
    """A tensor in a traced value: who produced it (`src`, output `index`), its metadata,
    and the parameter it is when it is one (then there is no edge)."""

    src: str | None
    index: int
    meta: TensorMeta
    param: ParamRef | None = None


def dtype_name(dtype: Any) -> str | None:
    return str(dtype).removeprefix("torch.") if dtype is not None else None


def tensor_meta(t: Any) -> TensorMeta:
    """Shape and dtype of a real, fake or meta tensor (symbolic dims become None)."""
    dims: list[int | None] = []
    for d in t.shape:
        try:
            dims.append(int(d))
        except (TypeError, ValueError, RuntimeError):
            dims.append(None)
    return TensorMeta(shape=tuple(dims), dtype=dtype_name(getattr(t, "dtype", None)))


def tree_map(value: Any, leaf: Any, kind: type = torch.Tensor) -> Any:
    """Apply `leaf` to every `kind` (a tensor, or a `TensorMeta` in a traced value) in
    tuples/lists/dicts; other values stay as they are, named tuples stay named tuples."""
    if isinstance(value, kind):
        return leaf(value)
    if isinstance(value, tuple):
        items = [tree_map(v, leaf, kind) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [tree_map(v, leaf, kind) for v in value]
    if isinstance(value, dict):
        return {k: tree_map(v, leaf, kind) for k, v in value.items()}
    return value


def flatten(tree: Any, kind: type = Ref) -> list[Any]:
    """The leaves of type `kind` in a tuple/list/dict tree, depth first, in order."""
    out: list[Any] = []

    def walk(v: Any) -> None:
        if isinstance(v, kind):
            out.append(v)
        elif isinstance(v, (tuple, list)):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    walk(tree)
    return out


def param_table(model: nn.Module) -> dict[int, ParamRef]:
    """id(parameter) -> ParamRef under its first qualified name (shared params keep one)."""
    table: dict[int, ParamRef] = {}
    for name, p in named_parameters(model):
        table[id(p)] = ParamRef(
            name=name,
            shape=tuple(int(d) for d in p.shape),
            dtype=dtype_name(p.dtype) or "",
            trainable=bool(p.requires_grad),
        )
    return table


def module_types(model: nn.Module) -> dict[str, str]:
    """Namespace ("layer1/0") -> module class name, for `GroupStats.module_type`."""
    return {module_namespace(name): type(m).__name__ for name, m in named_modules(model)}


def is_leaf_module(m: nn.Module) -> bool:
    """Modules drawn as one node: torch.nn modules without children, attention, RNNs, and
    Keras layers without sublayers (``Conv2D``, ``Dense``)."""
    if isinstance(m, (nn.MultiheadAttention, nn.RNNBase)):
        return True
    if is_keras(m):
        return not children(m)
    return type(m).__module__.startswith("torch.nn") and next(m.children(), None) is None


@contextlib.contextmanager
def preserved_state(model: nn.Module) -> Iterator[None]:
    """Restore buffers (BatchNorm running stats, counters) changed by a tracing forward."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, v in saved:
                if b.shape == v.shape:
                    b.copy_(v)


@dataclass
class Builder:
    """Accumulates nodes and edges; ids are unique; edges carry the producer's meta."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    _ids: dict[str, int] = field(default_factory=dict)

    def new_id(self, base: str) -> str:
        base = base or "node"
        n = self._ids.get(base, 0)
        self._ids[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def add(
        self,
        node_id: str,
        op: str,
        *,
        label: str,
        namespace: str,
        inputs: list[Ref],
        outputs: list[TensorMeta],
        params: list[ParamRef] | None = None,
        macs: int = 0,
        attrs: dict[str, Any] | None = None,
    ) -> Node:
        node = Node(
            id=node_id,
            op=op,
            label=label,
            namespace=namespace,
            attrs=attrs or {},
            inputs=[r.meta for r in inputs],
            outputs=outputs,
            params=list(params or []),
            macs=int(macs),
        )
        seen = {p.name for p in node.params}
        for r in inputs:
            if r.param is not None and r.param.name not in seen:
                seen.add(r.param.name)
                node.params.append(r.param)
        self.nodes.append(node)
        for i, r in enumerate(inputs):
            if r.src is not None:
                self.edges.append(
                    Edge(r.src, node_id, src_output=r.index, dst_input=i, tensor=r.meta)
                )
        return node

    def graph(self, meta: dict[str, Any]) -> Graph:
        return Graph(
            nodes=self.nodes,
            edges=self.edges,
            inputs=self.inputs,
            outputs=self.outputs,
            meta=meta,
        )
