"""ONNX GraphProto → Graph IR, with If/Loop/Scan subgraphs as nested namespace groups."""

from __future__ import annotations

import math
from collections import ChainMap
from typing import Any

import numpy as np

from deepscope.errors import ModelFormatError
from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta
from deepscope.sources._onnx_macs import MacCounter
from deepscope.sources._weights import tensor_stats

MAX_DEPTH = 32
STATS_NUMEL = 1 << 24
_MAX_LIST = 64


def _dtype(elem_type: int) -> str | None:
    from onnx import helper

    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type).name) if elem_type else None
    except (KeyError, ValueError, TypeError):
        return None


def _meta(value_info: Any) -> TensorMeta:
    t = value_info.type
    if not t.HasField("tensor_type"):
        return TensorMeta()
    tt = t.tensor_type
    shape: tuple[int | None, ...] | None = None
    if tt.HasField("shape"):
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    return TensorMeta(shape=shape, dtype=_dtype(tt.elem_type))


def _json_value(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")[:1000]
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in list(v)[:_MAX_LIST]]
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return f"<{type(v).__name__}>"


class GraphBuilder:
    """Walks one ONNX graph (recursively into subgraphs) and collects nodes, edges, params."""

    def __init__(self, graph_proto: Any) -> None:
        self.root = graph_proto
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.initializers: list[Any] = []
        self.stats: dict[str, dict[str, Any]] = {}
        self._params: dict[str, ParamRef] = {}
        self._metas: dict[str, TensorMeta] = {}
        self._producer: dict[str, str] = {}  # tensor name -> op_type that wrote it
        self.macs = MacCounter()

    def build(self) -> Graph:
        """The Graph IR of the root graph."""
        self._walk(self.root, "", "", ChainMap(), 0, top=True)
        graph = Graph(nodes=self.nodes, edges=self.edges, inputs=self.inputs, outputs=self.outputs)
        if self.macs.assumed:
            graph.meta["macsNote"] = "MACs count each symbolic dimension (batch, sequence) as 1"
        return graph

    def _collect(self, g: Any) -> None:
        from onnx import TensorProto

        from deepscope.sources._onnx_checks import check_initializer, to_array

        for vi in list(g.input) + list(g.output) + list(g.value_info):
            self._metas[vi.name] = _meta(vi)
        for t in g.initializer:
            spec = check_initializer(t)
            self.initializers.append(t)
            dtype = _dtype(t.data_type) or "undefined"
            self._params[t.name] = ParamRef(name=t.name, shape=spec.shape, dtype=dtype)
            self._metas[t.name] = TensorMeta(shape=spec.shape, dtype=dtype)
            numeric = spec.dtype != np.dtype(object)
            if t.data_location != TensorProto.EXTERNAL and spec.numel <= STATS_NUMEL and numeric:
                self.stats[t.name] = tensor_stats(to_array(t))

    def _walk(
        self,
        g: Any,
        id_prefix: str,
        ns_prefix: str,
        scope: ChainMap[str, tuple[str, int]],
        depth: int,
        *,
        top: bool = False,
    ) -> None:
        if depth > MAX_DEPTH:
            raise ModelFormatError(f"ONNX subgraphs nest deeper than {MAX_DEPTH} levels")
        self._collect(g)
        scope = scope.new_child()
        init_names = {t.name for t in g.initializer}
        for vi in g.input:
            if vi.name in init_names:
                continue
            nid = f"{id_prefix}input:{vi.name}"
            self.nodes.append(
                Node(
                    id=nid,
                    op="input",
                    label=vi.name,
                    namespace=ns_prefix,
                    outputs=[self._metas[vi.name]],
                )
            )
            scope[vi.name] = (nid, 0)
            if top:
                self.inputs.append(nid)
        for i, n in enumerate(g.node):
            self._node(n, f"{id_prefix}n{i}", ns_prefix, scope, depth)
        for vi in g.output:
            nid = f"{id_prefix}output:{vi.name}"
            meta = self._metas.get(vi.name, TensorMeta())
            self.nodes.append(
                Node(id=nid, op="output", label=vi.name, namespace=ns_prefix, inputs=[meta])
            )
            if vi.name in scope:
                src, k = scope[vi.name]
                self.edges.append(Edge(src=src, dst=nid, src_output=k, tensor=meta))
            if top:
                self.outputs.append(nid)

    def _node(
        self, n: Any, nid: str, ns_prefix: str, scope: ChainMap[str, tuple[str, int]], depth: int
    ) -> None:
        from onnx import AttributeProto, helper

        from deepscope.sources.onnx_file import namespace_from_name, normalise_op

        own = namespace_from_name(n.name)
        ns = "/".join(p for p in (ns_prefix, own) if p)
        node = Node(id=nid, op=normalise_op(n.op_type), label=n.name or n.op_type, namespace=ns)
        if n.domain and n.domain != "ai.onnx":
            node.attrs["domain"] = n.domain
        for j, name in enumerate(n.input):
            if not name:
                continue
            meta = self._metas.get(name, TensorMeta())
            node.inputs.append(meta)
            if name in self._params and name not in scope:
                node.params.append(self._params[name])
            elif name in scope:
                src, k = scope[name]
                self.edges.append(Edge(src=src, dst=nid, src_output=k, dst_input=j, tensor=meta))
        for k, name in enumerate(n.output):
            node.outputs.append(self._metas.get(name, TensorMeta()))
            if name:
                scope[name] = (nid, k)
                self._producer[name] = n.op_type
        self.nodes.append(node)
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                self._sub(a.g, nid, f"{ns}/{_tail(n)}.{a.name}", scope, depth)
            elif a.type == AttributeProto.GRAPHS:
                for gi, sub in enumerate(a.graphs):
                    self._sub(sub, nid, f"{ns}/{_tail(n)}.{a.name}.{gi}", scope, depth)
            elif a.type == AttributeProto.TENSOR:
                node.attrs[a.name] = f"<tensor {list(a.t.dims)}>"
            else:
                try:
                    node.attrs[a.name] = _json_value(helper.get_attribute_value(a))
                except Exception:
                    node.attrs[a.name] = "<unreadable>"
        node.macs = self._macs(n, node, scope)

    def _macs(self, n: Any, node: Node, scope: ChainMap[str, tuple[str, int]]) -> int:
        outs: list[TensorMeta | None] = list(node.outputs)
        if n.op_type == "Add" and len(n.input) == 2 and n.domain in ("", "ai.onnx"):
            a, b = n.input
            for x, y in ((a, b), (b, a)):
                bias = self._params.get(x) if x not in scope else None
                if bias is not None and len(bias.shape) == 1 and self._producer.get(y) == "MatMul":
                    return self.macs.bias_add(outs[0] if outs else None)
            return 0
        ins = [self._metas.get(x, TensorMeta()) if x else None for x in n.input]
        return self.macs.node(n.op_type, n.domain, node.attrs, ins, outs)

    def _sub(
        self, g: Any, parent: str, ns: str, scope: ChainMap[str, tuple[str, int]], depth: int
    ) -> None:
        self._walk(g, f"{parent}/{ns.rsplit('/', 1)[-1]}/", ns.strip("/"), scope, depth + 1)


def _tail(n: Any) -> str:
    label: str = (n.name or n.op_type).rstrip("/").rsplit("/", 1)[-1]
    return label.replace("/", "_") or str(n.op_type)
