"""Collapse a graph to group nodes at a namespace depth (for static drawings and huge graphs).

A node whose namespace has at least `depth` parts is replaced by the group node of its
first `depth` parts (id ``ns:<namespace>``, op ``"group"``); shallower nodes stay. Edges
between different representatives are kept once per tensor, so each group node's
``inputs``/``outputs`` list the tensors that cross its border, and every edge's tensor
equals its source output and destination input.

Example:
    >>> from deepscope.graph.ir import Graph, Node, Edge
    >>> g = Graph(nodes=[Node("a", "conv2d", namespace="b/c"), Node("d", "relu", namespace="b/e")],
    ...           edges=[Edge("a", "d")])
    >>> [n.id for n in collapse(g, 1).nodes]
    ['ns:b']
"""

from __future__ import annotations

from collections.abc import Iterable

from deepscope.graph.aggregate import aggregate
from deepscope.graph.ir import Edge, Graph, GroupStats, Node, ParamRef, TensorMeta

__all__ = ["collapse", "group_id"]


def group_id(namespace: str) -> str:
    """The id of the group node for `namespace`."""
    return f"ns:{namespace}"


def _rep_namespace(namespace: str, depth: int) -> str | None:
    if not namespace:
        return None
    parts = namespace.split("/")
    if len(parts) < depth:
        return None
    return "/".join(parts[:depth])


def collapse(graph: Graph, depth: int) -> Graph:
    """A new graph whose modules deeper than `depth` are single group nodes.

    `depth` >= 1; group stats come from `graph.groups` (computed if missing).
    """
    if depth < 1:
        raise ValueError(f"collapse depth must be >= 1, got {depth}")
    groups = graph.groups or aggregate(graph)
    rep: dict[str, str] = {}
    members: dict[str, list[Node]] = {}
    kept: list[Node | str] = []  # original nodes or group namespaces, in first-seen order
    for node in graph.nodes:
        ns = _rep_namespace(node.namespace, depth)
        if ns is None:
            rep[node.id] = node.id
            kept.append(node)
            continue
        rep[node.id] = group_id(ns)
        if ns not in members:
            members[ns] = []
            kept.append(ns)
        members[ns].append(node)

    src_slot: dict[tuple[str, int], int] = {}  # (orig src, output) -> index in group outputs
    dst_slot: dict[tuple[str, str, int], int] = {}  # (group, orig src, output) -> input index
    g_out: dict[str, list[TensorMeta]] = {group_id(ns): [] for ns in members}
    g_in: dict[str, list[TensorMeta]] = {group_id(ns): [] for ns in members}
    edges: list[Edge] = []
    seen: set[tuple[str, str, str, int]] = set()
    by_id = {n.id: n for n in graph.nodes}
    for e in graph.edges:
        rs, rd = rep.get(e.src), rep.get(e.dst)
        if rs is None or rd is None or rs == rd:
            continue
        key = (rs, rd, e.src, e.src_output)
        if key in seen:
            continue
        seen.add(key)
        tensor = e.tensor or _out(by_id[e.src], e.src_output)
        src_out = e.src_output
        if rs in g_out:
            slot = src_slot.get((e.src, e.src_output))
            if slot is None:
                slot = len(g_out[rs])
                src_slot[(e.src, e.src_output)] = slot
                g_out[rs].append(tensor)
            src_out = slot
        dst_in = e.dst_input
        if rd in g_in:
            dkey = (rd, e.src, e.src_output)
            islot = dst_slot.get(dkey)
            if islot is None:
                islot = len(g_in[rd])
                dst_slot[dkey] = islot
                g_in[rd].append(tensor)
            dst_in = islot
        edges.append(Edge(rs, rd, src_output=src_out, dst_input=dst_in, tensor=tensor))

    nodes: list[Node] = []
    for item in kept:
        if isinstance(item, Node):
            nodes.append(item)
            continue
        gid = group_id(item)
        nodes.append(_group_node(item, members[item], groups.get(item), g_in[gid], g_out[gid]))
    out = Graph(
        nodes=nodes,
        edges=edges,
        inputs=_dedupe(rep[i] for i in graph.inputs if i in rep),
        outputs=_dedupe(rep[o] for o in graph.outputs if o in rep),
        groups=dict(groups),
        overlays={},
        meta={**graph.meta, "collapsedDepth": depth},
    )
    return out


def _out(node: Node, index: int) -> TensorMeta:
    return node.outputs[index] if 0 <= index < len(node.outputs) else TensorMeta()


def _dedupe(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


def _group_node(
    ns: str,
    nodes: list[Node],
    stats: GroupStats | None,
    inputs: list[TensorMeta],
    outputs: list[TensorMeta],
) -> Node:
    params: dict[str, ParamRef] = {}
    for n in nodes:
        for p in n.params:
            params.setdefault(p.name, p)
    module_type = stats.module_type if stats else ""
    return Node(
        id=group_id(ns),
        op="group",
        label=ns.rsplit("/", 1)[-1],
        namespace=ns,
        attrs={
            "moduleType": module_type,
            "opCount": stats.op_count if stats else len(nodes),
            "params": stats.params if stats else sum(p.numel for p in params.values()),
        },
        inputs=list(inputs),
        outputs=list(outputs),
        params=list(params.values()),
        macs=stats.macs if stats else sum(n.macs for n in nodes),
    )
