"""Per-namespace aggregates: params (shared counted once), MACs, op count, output shapes.

Every prefix of every node's namespace is a group; ``""`` is the whole model. Linear in
the number of nodes times namespace depth (dicts and sets, no pairwise loops).

Example:
    >>> from deepscope.graph.ir import Graph, Node, ParamRef
    >>> w = ParamRef("fc.weight", (2, 3), "float32")
    >>> g = Graph(nodes=[Node("a", "linear", namespace="fc", params=[w], macs=6)])
    >>> aggregate(g)[""].params
    6
"""

from __future__ import annotations

from deepscope.graph.gcpause import gc_paused
from deepscope.graph.ir import Edge, Graph, GroupStats, Node, ParamRef, Shape
from deepscope.graph.namespace import owner_namespace, prefixes

__all__ = ["PSEUDO_OPS", "aggregate", "prefixes"]

# Nodes that mark graph boundaries rather than compute: not counted as ops.
PSEUDO_OPS = frozenset({"input", "output"})


def _common_depth(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def aggregate(graph: Graph) -> dict[str, GroupStats]:
    """Compute `GroupStats` for every namespace prefix, store them in `graph.groups`, return them.

    Module types come from ``graph.meta["moduleTypes"]`` (namespace -> class name) when a
    source recorded them; parameters in ``graph.meta["unusedParams"]`` (``{"name", "shape",
    "dtype", "trainable"}`` dicts: parameters no traced op used) count in their module's
    groups. Output shapes of a group are the tensors its nodes send to nodes outside it (or
    out of the graph), each listed once, in edge order.
    """
    with gc_paused():
        stats = _aggregate(graph)
    graph.groups = stats
    return stats


def _aggregate(graph: Graph) -> dict[str, GroupStats]:
    module_types: dict[str, str] = dict(graph.meta.get("moduleTypes") or {})
    stats: dict[str, GroupStats] = {}
    seen_params: dict[str, set[str]] = {}
    ns_prefixes: dict[str, list[str]] = {}  # namespace -> its prefixes (shared by its nodes)
    node_prefixes: dict[str, list[str]] = {}
    by_id: dict[str, Node] = {}

    def group(ns: str) -> GroupStats:
        g = stats.get(ns)
        if g is None:
            g = GroupStats(namespace=ns, module_type=module_types.get(ns, ""))
            stats[ns] = g
            seen_params[ns] = set()
        return g

    for node in graph.nodes:
        by_id[node.id] = node
        pre = ns_prefixes.get(node.namespace)
        if pre is None:
            pre = ns_prefixes[node.namespace] = prefixes(node.namespace)
            for ns in pre:
                group(ns)
        node_prefixes[node.id] = pre
        counts = node.op not in PSEUDO_OPS
        if not counts and not node.params:
            continue
        for ns in pre:
            g = stats[ns]
            if counts:
                g.op_count += 1
                g.macs += node.macs
            if node.params:
                seen = seen_params[ns]
                for p in node.params:
                    if p.name not in seen:
                        seen.add(p.name)
                        _add_param(g, p)

    for raw in graph.meta.get("unusedParams") or []:
        # parameters no traced op used (an untaken branch): still the model's parameters
        p = ParamRef(raw["name"], tuple(raw["shape"]), raw["dtype"], bool(raw["trainable"]))
        for ns in prefixes(owner_namespace(p.name)):
            g = group(ns)
            if p.name not in seen_params[ns]:
                seen_params[ns].add(p.name)
                _add_param(g, p)

    outs: dict[str, dict[tuple[str, int], Shape | None]] = {ns: {} for ns in stats}
    for e in graph.edges:
        src_pre = node_prefixes.get(e.src)
        dst_pre = node_prefixes.get(e.dst)
        if src_pre is None or dst_pre is None or src_pre is dst_pre:
            continue  # same namespace: the tensor leaves no group
        key = (e.src, e.src_output)
        shape: Shape | None | object = _UNSET
        for ns in src_pre[_common_depth(src_pre, dst_pre) :]:
            group_outs = outs[ns]
            if key not in group_outs:
                if shape is _UNSET:
                    shape = _edge_shape(e, by_id[e.src])
                group_outs[key] = shape  # type: ignore[assignment]
    for nid in graph.outputs:
        out_node = by_id.get(nid)
        if out_node is None:
            continue
        for i, t in enumerate(out_node.outputs):
            for ns in node_prefixes[nid]:
                outs[ns].setdefault((nid, i), t.shape)
    for ns, shapes in outs.items():
        stats[ns].output_shapes = list(shapes.values())
    return stats


_UNSET = object()


def _add_param(g: GroupStats, p: ParamRef) -> None:
    n = p.numel
    g.params += n
    if p.trainable:
        g.trainable_params += n
    else:
        g.frozen_params += n


def _edge_shape(e: Edge, src: Node) -> Shape | None:
    if e.tensor is not None:
        return e.tensor.shape
    if 0 <= e.src_output < len(src.outputs):
        return src.outputs[e.src_output].shape
    return None
