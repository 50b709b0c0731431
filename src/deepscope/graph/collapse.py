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

from collections.abc import Callable, Iterable

from deepscope.graph.aggregate import aggregate
from deepscope.graph.ir import Edge, Graph, GroupStats, Node, ParamRef, TensorMeta
from deepscope.graph.namespace import group_id

__all__ = ["collapse", "group_id", "merge_nodes"]


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
    namespace_of: dict[str, str] = {}
    for node in graph.nodes:
        ns = _rep_namespace(node.namespace, depth)
        if ns is not None:
            rep[node.id] = group_id(ns)
            namespace_of[group_id(ns)] = ns

    def build(gid: str, members: list[Node], ins: list[TensorMeta], outs: list[TensorMeta]) -> Node:
        ns = namespace_of[gid]
        return _group_node(ns, members, groups.get(ns), ins, outs)

    out = merge_nodes(graph, rep, build)
    out.groups = dict(groups)
    out.meta["collapsedDepth"] = depth
    return out


GroupBuilder = Callable[[str, list[Node], list[TensorMeta], list[TensorMeta]], Node]


def merge_nodes(graph: Graph, rep: dict[str, str], build: GroupBuilder) -> Graph:
    """A new graph where the nodes mapped by `rep` (node id -> group id) become one node
    per group id, made by ``build(group_id, members, border_inputs, border_outputs)``.

    Unmapped nodes stay as they are; groups sit where their first member was. Edges between
    different representatives are kept once per tensor (a group's inputs/outputs list the
    tensors crossing its border). Linear in nodes + edges.
    """
    members: dict[str, list[Node]] = {}
    kept: list[Node | str] = []  # original nodes or group ids, in first-seen order
    for node in graph.nodes:
        gid = rep.get(node.id)
        if gid is None:
            kept.append(node)
            continue
        if gid not in members:
            members[gid] = []
            kept.append(gid)
        members[gid].append(node)
    present = {n.id for n in graph.nodes}

    src_slot: dict[tuple[str, int], int] = {}  # (orig src, output) -> index in group outputs
    dst_slot: dict[tuple[str, str, int], int] = {}  # (group, orig src, output) -> input index
    g_out: dict[str, list[TensorMeta]] = {gid: [] for gid in members}
    g_in: dict[str, list[TensorMeta]] = {gid: [] for gid in members}
    edges: list[Edge] = []
    seen: set[tuple[str, str, str, int]] = set()
    by_id = {n.id: n for n in graph.nodes}
    for e in graph.edges:
        if e.src not in present or e.dst not in present:
            continue
        rs, rd = rep.get(e.src, e.src), rep.get(e.dst, e.dst)
        if rs == rd:
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
        else:
            nodes.append(build(item, members[item], g_in[item], g_out[item]))
    return Graph(
        nodes=nodes,
        edges=edges,
        inputs=_dedupe(rep.get(i, i) for i in graph.inputs if i in present),
        outputs=_dedupe(rep.get(o, o) for o in graph.outputs if o in present),
        groups=dict(graph.groups),
        overlays={},
        meta=dict(graph.meta),
    )


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
