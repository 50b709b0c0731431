"""Fold a long flat graph into a few readable blocks for static drawings.

A graph with more than `above` nodes (after any namespace collapse) is read along a
topological order of its *compute* nodes; constant subgraphs (nodes all of whose inputs
are constants, e.g. the ``ConstantOfShape`` weights of ONNX "light" models) ride along with
their first consumer. The order is cut wherever at most one value stays live (between
residual blocks, between DenseNet layers, between the layers of a chain): pieces of at most
`max_atom` compute ops are atoms, longer pieces are split into their ops. Tandem repeats of
an atom sequence (period <= `max_period` atoms) become one "repeat" group, e.g. DenseNet's
``×24 [batch_norm → mul → add → relu → conv → … → concat]``; other multi-op atoms become
"block" groups; a single op with constants is an "op" group (drawn as that op). If that
still leaves more than `max_nodes` boxes, consecutive single ops (then consecutive boxes of
any kind) are merged into "chunk" groups along the order.

Every group node lists its members (``attrs["members"]``, node ids in order) and counts
them (``attrs["opCount"]``), so every op stays reachable. Groups are contiguous stretches of
one topological order, so the folded graph has no cycles.

Cost: linear in nodes + edges for a fixed `max_period`: one pass each to order (a heap,
O(N log N), only when the node list is not already topological), find constants, count
live values (a difference array) and cut; the repeat scan compares each atom with the
`max_period` atoms after it once; fitting the box budget is a binary search over chunk
sizes, O(items log items). ``graph.meta["fold"]["work"]`` counts these steps so that tests
can check the growth without timing anything.

Example:
    >>> from deepscope.graph.ir import Graph, Node, Edge
    >>> ops = ["linear", "relu"] * 100
    >>> g = Graph(nodes=[Node(f"n{i}", op) for i, op in enumerate(ops)],
    ...           edges=[Edge(f"n{i}", f"n{i + 1}") for i in range(199)])
    >>> f = fold(g)
    >>> [(n.attrs["fold"], n.attrs["repeats"], n.attrs["opCount"]) for n in f.nodes]
    [('repeat', 100, 200)]
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

from deepscope.graph.collapse import merge_nodes
from deepscope.graph.gcpause import gc_paused
from deepscope.graph.ir import Graph, Node, ParamRef, TensorMeta

__all__ = ["fold"]

_PINNED_OPS = frozenset({"input", "output"})
_MAX_PINNED = 8  # more graph inputs/outputs than this fold like any other node
_UNIT_SHOWN = 12  # ops of a repeat's unit kept in attrs["unit"]


@dataclass
class _Item:
    kind: str  # "op" (drawn as is), "block", "repeat", "chunk"
    atoms: list[int]  # compute positions, in order
    repeats: int = 1
    members: list[int] = field(default_factory=list)  # filled when built, constants too
    ops: list[str] = field(default_factory=list)  # compute op names, filled when built


def _signature(node: Node) -> str:
    if node.op == "group":  # a module's type, not its (unique) name; else its size
        mtype = node.attrs.get("moduleType")
        return f"group:{mtype}" if mtype else f"group:#{node.attrs.get('opCount')}"
    return node.op


def _display(node: Node) -> str:
    if node.op == "group":
        return str(node.attrs.get("moduleType") or node.label or "group")
    return node.op


def _topo(n: int, succ: list[list[int]], indeg: list[int], work: list[int]) -> list[int]:
    """Original order if it is topological, else Kahn's order preferring earlier nodes."""
    if all(d > s for s in range(n) for d in succ[s]):
        work[0] += n
        return list(range(n))
    deg = list(indeg)
    heap = [i for i in range(n) if deg[i] == 0]
    heapq.heapify(heap)
    order: list[int] = []
    placed = [False] * n
    nxt = 0
    while len(order) < n:
        if not heap:  # a cycle: release the earliest node not yet placed
            while placed[nxt]:
                nxt += 1
            deg[nxt] = 0
            heap.append(nxt)
        i = heapq.heappop(heap)
        if placed[i]:
            continue
        placed[i] = True
        order.append(i)
        work[0] += 1 + len(succ[i])
        for j in succ[i]:
            deg[j] -= 1
            if deg[j] == 0 and not placed[j]:
                heapq.heappush(heap, j)
    return order


def _scan(
    sig: list[int], size: list[int], max_period: int, min_ops: int, work: list[int]
) -> list[tuple[int, int, int]]:
    """Tandem repeats: (start, period, reps) covering `sig` in order; reps 1 is one atom.

    Right to left, ``match[p]`` is how far ``sig[j:]`` equals ``sig[j + p:]``, which gives
    the best repeat starting at every j in O(n * max_period). Best means most repeats (the
    single DenseNet layer, not "6 layers + transition + 6 layers" twice), then the shortest
    period. Left to right, a repeat is taken unless a better one starts inside its first
    unit (so "transition + 12 layers" twice does not swallow a block of 12 layers, and
    ResNet's "block, relu" pairs keep their phase).
    """
    n = len(sig)
    ops_before = [0]
    for s in size:
        ops_before.append(ops_before[-1] + s)
    match = [0] * (max_period + 1)
    best_reps = [1] * n
    best_p = [1] * n
    for j in range(n - 1, -1, -1):
        top_reps, top_p = 1, 1
        here = sig[j]
        periods = min(max_period, n - 1 - j)  # match[p] of longer periods stays 0
        work[0] += periods + 1
        for p in range(1, periods + 1):
            m = match[p] + 1 if sig[j + p] == here else 0
            match[p] = m
            if m >= p:  # two or more repeats
                reps = (p + m) // p
                if reps > top_reps and ops_before[j + reps * p] - ops_before[j] >= min_ops:
                    top_reps, top_p = reps, p
        best_reps[j], best_p[j] = top_reps, top_p
    out: list[tuple[int, int, int]] = []
    i = 0
    while i < n:
        reps, p = best_reps[i], best_p[i]
        work[0] += p
        if reps >= 2 and all((best_reps[j], -best_p[j]) < (reps, -p) for j in range(i + 1, i + p)):
            out.append((i, p, reps))
            i += reps * p
        else:
            out.append((i, 1, 1))
            i += 1
    return out


def _chunk(items: list[_Item], size: int, ops_only: bool, work: list[int]) -> list[_Item]:
    """Merge runs of consecutive items (only "op" items if `ops_only`) into chunks of about
    `size` items each."""
    out: list[_Item] = []
    run: list[_Item] = []

    def flush() -> None:
        if len(run) <= 1:
            out.extend(run)
        else:
            pieces = -(-len(run) // size)
            for k in range(pieces):
                part = run[k * len(run) // pieces : (k + 1) * len(run) // pieces]
                if len(part) == 1:
                    out.append(part[0])
                else:
                    atoms = [a for it in part for a in it.atoms]
                    out.append(_Item("chunk", atoms))
        run.clear()

    for it in items:
        work[0] += 1
        if ops_only and it.kind != "op":
            flush()
            out.append(it)
        else:
            run.append(it)
    flush()
    return out


def fold(
    graph: Graph,
    *,
    above: int = 120,
    max_nodes: int = 60,
    max_period: int = 24,
    max_atom: int = 48,
    min_repeat_ops: int = 6,
) -> Graph:
    """`graph` itself if it has at most `above` nodes, else a folded copy of at most about
    `max_nodes` nodes (see the module docstring). ``meta["fold"]`` records the counts."""
    if len(graph.nodes) <= above:
        return graph
    with gc_paused():  # many small lists: collector passes over the whole graph cost more
        return _fold(graph, max_nodes, max_period, max_atom, min_repeat_ops)


def _fold(
    graph: Graph, max_nodes: int, max_period: int, max_atom: int, min_repeat_ops: int
) -> Graph:
    nodes = graph.nodes
    work = [0]
    pinned_idx = [i for i, n in enumerate(nodes) if n.op in _PINNED_OPS]
    pinned = set(pinned_idx) if len(pinned_idx) <= _MAX_PINNED else set()
    free = [i for i in range(len(nodes)) if i not in pinned]
    local = {nodes[i].id: k for k, i in enumerate(free)}
    inputs = {nodes[i].id for i in pinned if nodes[i].op == "input"}
    n = len(free)
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    fed = [False] * n  # reads a graph input
    for e in graph.edges:
        work[0] += 1
        s, d = local.get(e.src), local.get(e.dst)
        if s is None and d is not None and e.src in inputs:
            fed[d] = True
        if s is None or d is None or s == d:
            continue
        succ[s].append(d)
        pred[d].append(s)
        indeg[d] += 1
    order = _topo(n, succ, indeg, work)

    # constants: no inputs, or only constant inputs (a graph input is never one)
    const = [False] * n
    for k in order:
        const[k] = not fed[k] and not _is_input(nodes[free[k]]) and all(const[p] for p in pred[k])
    compute = [k for k in order if not const[k]]
    if not compute:
        const = [False] * n
        compute = list(order)
    cpos = {k: i for i, k in enumerate(compute)}
    # attach each constant to its first compute consumer (reverse order: consumers first)
    anchor: dict[int, int] = {}
    for k in reversed(order):
        if const[k]:
            targets = [cpos[s] if not const[s] else anchor[s] for s in succ[k]]
            anchor[k] = min(targets) if targets else len(compute) - 1
            work[0] += 1 + len(succ[k])
    attached: list[list[int]] = [[] for _ in compute]
    for k in order:
        if const[k]:
            attached[anchor[k]].append(k)

    cuts = _cuts(compute, cpos, succ, const, work)
    atoms_of: list[list[int]] = []  # atom -> compute positions
    start = 0
    for i in range(len(compute)):
        if cuts[i] or i == len(compute) - 1:
            piece = list(range(start, i + 1))
            if len(piece) <= max_atom:
                atoms_of.append(piece)
            else:
                atoms_of.extend([p] for p in piece)
            start = i + 1
    interned: dict[tuple[str, ...], int] = {}
    sig = [
        interned.setdefault(tuple(_signature(nodes[free[compute[p]]]) for p in atom), len(interned))
        for atom in atoms_of
    ]
    size = [len(a) for a in atoms_of]
    items: list[_Item] = []
    # a repeat must fill about a quarter of a box's share of the ops to earn its own box
    min_ops = max(min_repeat_ops, len(compute) // (4 * max_nodes))
    for s, p, reps in _scan(sig, size, max_period, min_ops, work):
        atoms = [c for a in atoms_of[s : s + p * reps] for c in a]
        if reps > 1:
            items.append(_Item("repeat", atoms, repeats=reps))
        elif len(atoms) > 1:
            items.append(_Item("block", atoms))
        else:
            items.append(_Item("op", atoms))

    items = _fit(items, max(2, max_nodes - len(pinned)), work)
    return _build(graph, free, compute, attached, items, work)


def _count(items: list[_Item], size: int, work: list[int]) -> int:
    """len(_chunk(items, size, True)) without building it."""
    total = run = 0
    for it in items + [_Item("end", [])]:
        work[0] += 1
        if it.kind == "op":
            run += 1
            continue
        total += run if run <= 1 else -(-run // size)
        total += it.kind != "end"
        run = 0
    return total


def _fit(items: list[_Item], limit: int, work: list[int]) -> list[_Item]:
    """At most `limit` items: runs of single ops chunked by the smallest size that fits
    (binary search), or, if that cannot fit, every item chunked evenly."""
    if len(items) <= limit:
        return items
    if _count(items, len(items), work) > limit:
        return _chunk(items, -(-len(items) // limit), False, work)
    lo, hi = 2, len(items)  # the answer lies in [lo, hi]
    while lo < hi:
        mid = (lo + hi) // 2
        if _count(items, mid, work) <= limit:
            hi = mid
        else:
            lo = mid + 1
    return _chunk(items, lo, True, work)


def _is_input(node: Node) -> bool:
    return node.op == "input"


def _cuts(
    compute: list[int],
    cpos: dict[int, int],
    succ: list[list[int]],
    const: list[bool],
    work: list[int],
) -> list[bool]:
    """cuts[i]: at most the baseline number of values (usually one) is live after compute
    position i. Live values are counted with a difference array (linear)."""
    m = len(compute)
    diff = [0] * (m + 1)
    for i, k in enumerate(compute):
        last = max((cpos[s] for s in succ[k] if not const[s]), default=i)
        work[0] += 1 + len(succ[k])
        if last > i:
            diff[i] += 1
            diff[last] -= 1
    live: list[int] = []
    run = 0
    for i in range(m):
        run += diff[i]
        live.append(run)
    base = max(1, min(live[:-1], default=1))
    return [v <= base for v in live]


def _build(
    graph: Graph,
    free: list[int],
    compute: list[int],
    attached: list[list[int]],
    items: list[_Item],
    work: list[int],
) -> Graph:
    nodes = graph.nodes
    taken = {n.id for n in nodes}
    rep: dict[str, str] = {}
    info: dict[str, _Item] = {}
    rank: dict[str, int] = {}
    for pos, it in enumerate(items):
        it.members = [m for c in it.atoms for m in (*attached[c], compute[c])]
        it.ops = [_display(nodes[free[compute[c]]]) for c in it.atoms]
        work[0] += len(it.members)
        if len(it.members) == 1:
            rank[nodes[free[it.members[0]]].id] = pos
            continue
        gid = f"fold:{len(info)}"
        while gid in taken:
            gid = "fold:" + gid
        info[gid] = it
        rank[gid] = pos
        for m in it.members:
            rep[nodes[free[m]].id] = gid

    def build(gid: str, members: list[Node], ins: list[TensorMeta], outs: list[TensorMeta]) -> Node:
        it = info[gid]
        ordered = [nodes[free[m]] for m in it.members]
        return _group_node(gid, it, ordered, ins, outs)

    out = merge_nodes(graph, rep, build)
    # boxes in the order read (graph inputs first, outputs last), not where members sat
    out.nodes.sort(key=lambda n: rank.get(n.id, -1 if n.op == "input" else len(items)))
    work[0] += len(graph.nodes) + len(graph.edges)
    out.meta["fold"] = {"groups": len(info), "nodes": len(out.nodes), "work": work[0]}
    return out


def _group_node(
    gid: str, it: _Item, members: list[Node], ins: list[TensorMeta], outs: list[TensorMeta]
) -> Node:
    params: dict[str, ParamRef] = {}
    op_count = 0
    for m in members:
        for p in m.params:
            params.setdefault(p.name, p)
        op_count += int(m.attrs.get("opCount") or 1) if m.op == "group" else 1
    unit = it.ops[: len(it.ops) // it.repeats]
    return Node(
        id=gid,
        op="group",
        label=gid,
        attrs={
            "fold": it.kind,
            "moduleType": "",
            "opCount": op_count,
            "repeats": it.repeats,
            "unit": unit[:_UNIT_SHOWN],
            "unitLength": len(unit),
            "computeOps": len(it.ops),
            "span": [it.atoms[0] + 1, it.atoms[-1] + 1],  # compute ops, 1-based, in order
            "opKinds": [[k, c] for k, c in Counter(it.ops).most_common(4)],
            "members": [m.id for m in members],
            "params": sum(p.numel for p in params.values()),
        },
        inputs=list(ins),
        outputs=list(outs),
        params=list(params.values()),
        macs=sum(m.macs for m in members),
    )
