"""A namespace hierarchy over a Graph, for `/api/graph/level` and `/api/graph/search`.

Built once per graph in one pass over nodes and edges (each edge is filed under the
deepest namespace that holds both its ends, the only level where it joins two different
children), so a level answers in time proportional to its own size, not the graph's.
Standard library only.

Example:
    >>> from deepscope.graph.ir import Edge, Graph, Node
    >>> g = Graph(nodes=[Node("a", "conv2d", namespace="b/c"), Node("d", "relu")],
    ...           edges=[Edge("a", "d")])
    >>> [n["id"] for n in GraphIndex(g).level("")["nodes"]]
    ['ns:b', 'd']
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import Any

from deepscope.errors import NotFoundError
from deepscope.graph.aggregate import aggregate
from deepscope.graph.ir import Edge, Graph, GroupStats, Node, TensorMeta

__all__ = ["MAX_LEVEL_NODES", "GraphIndex", "group_id"]

MAX_LEVEL_NODES = 5000
MAX_GROUP_TENSORS = 16
LEVEL_CACHE = 64


def group_id(namespace: str) -> str:
    """The id of the group node of `namespace` (``ns:<namespace>``)."""
    return f"ns:{namespace}"


def _prefixes(namespace: str) -> list[str]:
    if not namespace:
        return [""]
    parts = namespace.split("/")
    return [""] + ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _tensor(t: TensorMeta | None) -> dict[str, Any]:
    if t is None:
        return {"shape": None, "dtype": None}
    return {"shape": None if t.shape is None else list(t.shape), "dtype": t.dtype}


def _worse(a: float | None, b: float | None) -> float | None:
    """Combine overlay values of a group: a non-finite value wins (NaN first), else max."""
    if a is None:
        return b
    if b is None:
        return a
    if math.isnan(a) or math.isnan(b):
        return math.nan
    if math.isinf(a) or math.isinf(b):
        return a if math.isinf(a) else b
    return max(a, b)


class GraphIndex:
    """The children, edges and overlays of every namespace of one graph."""

    def __init__(self, graph: Graph, *, max_level_nodes: int = MAX_LEVEL_NODES) -> None:
        self.graph = graph
        self.max_level_nodes = max_level_nodes
        self.groups: dict[str, GroupStats] = graph.groups or aggregate(graph)
        self.nodes: dict[str, Node] = {n.id: n for n in graph.nodes}
        self.ops: dict[str, list[str]] = defaultdict(list)  # namespace -> direct op ids
        self.subgroups: dict[str, list[str]] = defaultdict(list)  # namespace -> child namespaces
        self.edges: dict[str, list[Edge]] = defaultdict(list)  # LCA namespace -> edges
        self.group_inputs: dict[str, dict[tuple[str, int], TensorMeta | None]] = defaultdict(dict)
        self.group_overlays: dict[str, dict[str, float | None]] = defaultdict(dict)
        self._prefix: dict[str, list[str]] = {}
        self._levels: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._build()

    def _build(self) -> None:
        known: set[str] = {""}
        for node in self.graph.nodes:
            pre = self._prefix.setdefault(node.namespace, _prefixes(node.namespace))
            self.ops[node.namespace].append(node.id)
            for parent, child in zip(pre, pre[1:], strict=False):
                if child not in known:
                    known.add(child)
                    self.subgroups[parent].append(child)
        for edge in self.graph.edges:
            src, dst = self.nodes.get(edge.src), self.nodes.get(edge.dst)
            if src is None or dst is None:
                continue
            sp, dp = self._prefix[src.namespace], self._prefix[dst.namespace]
            depth = 0
            for a, b in zip(sp, dp, strict=False):
                if a != b:
                    break
                depth += 1
            self.edges[sp[depth - 1]].append(edge)
            tensor = edge.tensor or self._out_tensor(src, edge.src_output)
            for ns in dp[depth:]:
                inputs = self.group_inputs[ns]
                if len(inputs) < MAX_GROUP_TENSORS:
                    inputs.setdefault((edge.src, edge.src_output), tensor)
        for name, values in self.graph.overlays.items():
            for nid, value in values.items():
                owner = self.nodes.get(nid)
                if owner is None or not owner.namespace:
                    continue
                for ns in self._prefix[owner.namespace][1:]:
                    per = self.group_overlays[ns]
                    per[name] = _worse(per.get(name), value)

    @staticmethod
    def _out_tensor(node: Node, index: int) -> TensorMeta | None:
        return node.outputs[index] if 0 <= index < len(node.outputs) else None

    def _rep(self, node_id: str, namespace: str) -> str | None:
        """The child of `namespace` that holds `node_id` (itself or a group), or None."""
        node = self.nodes.get(node_id)
        if node is None:
            return None
        if node.namespace == namespace:
            return node_id
        pre = self._prefix[node.namespace]
        depth = 0 if not namespace else namespace.count("/") + 1
        if len(pre) <= depth + 1 or pre[depth] != namespace:
            return None
        return group_id(pre[depth + 1])

    def _group_node(self, ns: str) -> dict[str, Any]:
        stats = self.groups.get(ns) or GroupStats(namespace=ns)
        return {
            "id": group_id(ns),
            "kind": "group",
            "label": ns.rsplit("/", 1)[-1],
            "op": stats.module_type or "group",
            "moduleType": stats.module_type,
            "namespace": ns,
            "params": stats.params,
            "trainableParams": stats.trainable_params,
            "macs": stats.macs,
            "opCount": stats.op_count,
            "childCount": len(self.subgroups.get(ns, ())) + len(self.ops.get(ns, ())),
            "inputs": [_tensor(t) for t in self.group_inputs.get(ns, {}).values()],
            "outputs": [{"shape": None if s is None else list(s), "dtype": None}
                        for s in stats.output_shapes],
            "attrs": {},
            "paramRefs": [],
            "overlays": dict(self.group_overlays.get(ns, {})),
        }  # fmt: skip

    def _op_node(self, node: Node) -> dict[str, Any]:
        params = sum(p.numel for p in node.params)
        return {
            "id": node.id,
            "kind": "op",
            "label": node.label or node.id,
            "op": node.op,
            "moduleType": "",
            "namespace": node.namespace,
            "params": params,
            "trainableParams": sum(p.numel for p in node.params if p.trainable),
            "macs": node.macs,
            "opCount": 1,
            "childCount": 0,
            "inputs": [_tensor(t) for t in node.inputs],
            "outputs": [_tensor(t) for t in node.outputs],
            "attrs": node.attrs,
            "paramRefs": [
                {"name": p.name, "shape": list(p.shape), "dtype": p.dtype, "trainable": p.trainable}
                for p in node.params
            ],
            "overlays": {
                name: values[node.id]
                for name, values in self.graph.overlays.items()
                if node.id in values
            },
        }

    def level(self, namespace: str) -> dict[str, Any]:
        """The direct children of `namespace` with the edges between them (docs/api.md).

        Answers are cached per namespace (at most `LEVEL_CACHE` of them); treat them as
        read-only."""
        with self._lock:
            cached = self._levels.get(namespace)
        if cached is not None:
            return cached
        answer = self._level(namespace)
        with self._lock:
            if len(self._levels) >= LEVEL_CACHE:
                self._levels.pop(next(iter(self._levels)))
            self._levels[namespace] = answer
        return answer

    def _level(self, namespace: str) -> dict[str, Any]:
        if namespace and namespace not in self.groups and namespace not in self.subgroups:
            if namespace not in self.ops:
                raise NotFoundError(f"the graph has no namespace {namespace!r}")
        children = self.subgroups.get(namespace, [])
        ops = self.ops.get(namespace, [])
        truncated = len(children) + len(ops) > self.max_level_nodes
        nodes = [self._group_node(ns) for ns in children[: self.max_level_nodes]]
        room = self.max_level_nodes - len(nodes)
        nodes += [self._op_node(self.nodes[i]) for i in ops[: max(0, room)]]
        shown = {n["id"] for n in nodes}
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for edge in self.edges.get(namespace, []):
            a, b = self._rep(edge.src, namespace), self._rep(edge.dst, namespace)
            if a is None or b is None or a == b or a not in shown or b not in shown:
                continue
            item = merged.get((a, b))
            if item is None:
                src = self.nodes[edge.src]
                t = _tensor(edge.tensor or self._out_tensor(src, edge.src_output))
                merged[(a, b)] = {"src": a, "dst": b, "shape": t["shape"], "dtype": t["dtype"],
                                  "count": 1}  # fmt: skip
            else:
                item["count"] += 1
        ends = {
            "inputs": self._ends(self.graph.inputs, namespace, shown),
            "outputs": self._ends(self.graph.outputs, namespace, shown),
        }
        return {
            "namespace": namespace,
            "meta": self.graph.meta,
            "overlayNames": sorted(self.graph.overlays),
            "nodes": nodes,
            "edges": list(merged.values()),
            **ends,
            "truncated": truncated,
        }

    def _ends(self, ids: list[str], namespace: str, shown: set[str]) -> list[str]:
        out: list[str] = []
        for nid in ids:
            rep = self._rep(nid, namespace)
            if rep is not None and rep in shown and rep not in out:
                out.append(rep)
        return out

    def search(self, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """Groups and ops whose id, label, op or namespace contains `query` (case-insensitive)."""
        needle = query.lower()
        if not needle:
            return []
        matches: list[dict[str, Any]] = []
        for ns, stats in self.groups.items():
            if ns and (needle in ns.lower() or needle in stats.module_type.lower()):
                matches.append({"id": group_id(ns), "label": ns.rsplit("/", 1)[-1],
                                "op": stats.module_type or "group", "namespace": ns,
                                "kind": "group"})  # fmt: skip
                if len(matches) >= limit:
                    return matches
        for node in self.graph.nodes:
            hay = f"{node.id}\n{node.label}\n{node.op}".lower()
            if needle in hay:
                matches.append({"id": node.id, "label": node.label or node.id, "op": node.op,
                                "namespace": node.namespace, "kind": "op"})  # fmt: skip
                if len(matches) >= limit:
                    break
        return matches
