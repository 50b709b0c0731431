"""A namespace hierarchy over a graph, for `/api/graph/level` and `/api/graph/search`.

Built once per graph in one pass over nodes and edges (each edge is filed under the
deepest namespace that holds both its ends, the only level where it joins two different
children), so a level answers in time proportional to its own size, not the graph's.

The index reads the graph's wire dict (`deepscope.graph.serialize`) directly: the server
parses a logged graph blob with `json.loads` and indexes it without building the IR
dataclasses, which halves a cold open of a 100k-op graph. A `Graph` is turned into its wire
dict first. Levels are cached as dicts and as encoded JSON bytes. Standard library only.

Example:
    >>> from deepscope.graph.ir import Edge, Graph, Node
    >>> g = Graph(nodes=[Node("a", "conv2d", namespace="b/c"), Node("d", "relu")],
    ...           edges=[Edge("a", "d")])
    >>> [n["id"] for n in GraphIndex(g).level("")["nodes"]]
    ['ns:b', 'd']
"""

from __future__ import annotations

import json
import math
import threading
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from deepscope.errors import ModelFormatError, NotFoundError
from deepscope.graph.aggregate import aggregate
from deepscope.graph.gcpause import gc_paused
from deepscope.graph.ir import Graph
from deepscope.graph.namespace import group_id, module_namespace, owner_namespace, prefixes
from deepscope.graph.serialize import (
    check_version,
    decode_value,
    from_dict,
    overlay_value,
    to_dict,
)
from deepscope.store.jsonenc import dumps

__all__ = ["MAX_LEVEL_NODES", "GraphIndex", "group_id"]

MAX_LEVEL_NODES = 5000
MAX_GROUP_TENSORS = 16
LEVEL_CACHE = 64
# per-module tables of a torch graph's meta (thousands of entries in a big model): already
# folded into the group nodes, so levels, sent on every expand, leave them out
LEVEL_META_SKIP = frozenset({"moduleTypes", "unusedParams"})

Wire = dict[str, Any]


def _tensor(t: Any) -> dict[str, Any]:
    """A level's copy of a wire tensor (``None`` -> unknown shape and dtype)."""
    if t is None:
        return {"shape": None, "dtype": None}
    return {"shape": t.get("shape"), "dtype": t.get("dtype")}


def _tensors(ts: Any) -> list[Any]:
    """A level's list of wire tensors: the writer's ``{"shape", "dtype"}`` dicts are shared
    as they are (levels are read-only), anything else is normalised by `_tensor`."""
    if not ts:
        return []
    out = list(ts)
    for i, t in enumerate(out):
        if type(t) is not dict or len(t) != 2 or "shape" not in t or "dtype" not in t:
            out[i] = _tensor(t)
    return out


def _numel(shape: Iterable[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


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


def encode_level(level: dict[str, Any]) -> bytes:
    """Strict JSON bytes of a level: the C encoder when every float is finite, else
    `jsonenc.dumps` (non-finite floats become ``{"nonfinite": ...}`` markers)."""
    try:
        text = json.dumps(
            level, allow_nan=False, ensure_ascii=False, separators=(",", ":"), check_circular=False
        )
    except (ValueError, TypeError):
        text = dumps(level)
    return text.encode("utf-8")


class GraphIndex:
    """The children, edges, ports and overlays of every namespace of one graph.

    `graph` is a `Graph` or its wire dict (as `json.loads` of a graph blob gives it; it is
    read, never changed, and must not be changed while the index lives). Malformed wire
    data raises `ModelFormatError`.
    """

    def __init__(self, graph: Graph | Wire, *, max_level_nodes: int = MAX_LEVEL_NODES) -> None:
        if isinstance(graph, Graph):
            if not graph.groups:
                aggregate(graph)
            data = to_dict(graph)
        else:
            check_version(graph)
            data = graph
        self.max_level_nodes = max_level_nodes
        self.nodes: dict[str, Wire] = {}  # node id -> wire node
        self.node_list: list[Wire] = []
        self.ns_of: dict[str, str] = {}  # node id -> namespace
        self.ops: dict[str, list[str]] = {}  # namespace -> direct op ids
        self.subgroups: dict[str, list[str]] = defaultdict(list)  # namespace -> child namespaces
        self.edges: dict[str, list[Wire]] = defaultdict(list)  # LCA namespace -> wire edges
        self.group_inputs: dict[str, dict[tuple[str, int], Any]] = defaultdict(dict)
        self.entries: dict[str, dict[str, None]] = defaultdict(dict)  # ns -> children fed
        self.exits: dict[str, dict[str, None]] = defaultdict(dict)  # ns -> children feeding out
        self.overlays: dict[str, dict[str, float | None]] = {}
        self.group_overlays: dict[str, dict[str, float | None]] = defaultdict(dict)
        self._prefix: dict[str, list[str]] = {}
        self._levels: dict[str, dict[str, Any]] = {}
        self._encoded: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._param_ops: dict[str, list[str]] | None = None  # built by `targets`
        self._owner_ops: dict[str, list[str]] | None = None
        self._targets: dict[str, list[str]] = {}  # overlay key -> node ids (memo)
        self._chains: dict[str, tuple[str, ...]] = {}  # node id -> ids of its groups
        try:
            with gc_paused():
                meta = decode_value(data.get("meta") or {})
                self.meta: dict[str, Any] = {
                    k: v for k, v in meta.items() if k not in LEVEL_META_SKIP
                }
                self.inputs: list[str] = [str(i) for i in data.get("inputs") or []]
                self.outputs: list[str] = [str(o) for o in data.get("outputs") or []]
                self._build_nodes(data.get("nodes") or [])
                self.groups: dict[str, Wire] = self._groups(data)
                self._ports(self.inputs, self.entries)
                self._build_edges(data.get("edges") or [])
                self._ports(self.outputs, self.exits)
                self._build_overlays(data.get("overlays") or {})
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelFormatError(
                f"graph JSON is malformed ({type(exc).__name__}: {exc})"
            ) from exc

    # ---- build --------------------------------------------------------------------------
    def _build_nodes(self, nodes: list[Wire]) -> None:
        known: set[str] = {""}
        by_id, ns_of, ops, prefix, subgroups = (
            self.nodes, self.ns_of, self.ops, self._prefix, self.subgroups
        )  # fmt: skip
        for node in nodes:
            nid = node["id"]
            ns = node.get("namespace", "")
            if type(nid) is not str or type(ns) is not str:
                raise TypeError(f"node id and namespace must be strings: {nid!r}, {ns!r}")
            by_id[nid] = node
            ns_of[nid] = ns
            members = ops.get(ns)
            if members is None:
                members = ops[ns] = []
                pre = prefix[ns] = prefixes(ns)
                for parent, child in zip(pre, pre[1:], strict=False):
                    if child not in known:
                        known.add(child)
                        subgroups[parent].append(child)
            members.append(nid)
        self.node_list = nodes

    def _groups(self, data: Wire) -> dict[str, Wire]:
        groups = data.get("groups")
        if groups or not self.nodes:
            return dict(groups or {})
        # not aggregated when logged: compute the stats once from the IR
        graph = from_dict(data)
        aggregate(graph)
        return dict(to_dict(graph)["groups"])

    def _ports(self, ids: list[str], ports: dict[str, dict[str, None]]) -> None:
        """The graph's own inputs (outputs) enter (leave) every group that holds them."""
        for nid in ids:
            ns = self.ns_of.get(nid)
            if ns:
                pre = self._prefix[ns]
                for k in range(1, len(pre)):
                    ports[pre[k]][nid if k == len(pre) - 1 else group_id(pre[k + 1])] = None

    def _build_edges(self, edges: list[Wire]) -> None:
        ns_of, prefix, filed = self.ns_of, self._prefix, self.edges
        entries, exits, group_inputs = self.entries, self.exits, self.group_inputs
        for edge in edges:
            src, dst = edge["src"], edge["dst"]
            sn, dn = ns_of.get(src), ns_of.get(dst)
            if sn is None or dn is None:
                continue
            if sn == dn:
                filed[sn].append(edge)
                continue
            sp, dp = prefix[sn], prefix[dn]
            depth = 0
            for a, b in zip(sp, dp, strict=False):
                if a != b:
                    break
                depth += 1
            filed[sp[depth - 1]].append(edge)
            last = len(sp) - 1
            for k in range(depth, last + 1):
                exits[sp[k]][src if k == last else group_id(sp[k + 1])] = None
            last = len(dp) - 1
            key = (src, edge.get("srcOutput", 0))
            for k in range(depth, last + 1):
                entries[dp[k]][dst if k == last else group_id(dp[k + 1])] = None
                inputs = group_inputs[dp[k]]
                if len(inputs) < MAX_GROUP_TENSORS and key not in inputs:
                    inputs[key] = self._edge_tensor(edge)

    def _build_overlays(self, overlays: Wire) -> None:
        for name, values in overlays.items():
            decoded = {str(k): overlay_value(v) for k, v in values.items()}
            self.overlays[str(name)] = decoded
            for nid, value in decoded.items():
                ns = self.ns_of.get(nid)
                if not ns:
                    continue
                for group in self._prefix[ns][1:]:
                    per = self.group_overlays[group]
                    per[name] = _worse(per.get(name), value)

    def _edge_tensor(self, edge: Wire) -> Any:
        tensor = edge.get("tensor")
        if tensor is not None:
            return tensor
        outputs = self.nodes[edge["src"]].get("outputs") or []
        index = edge.get("srcOutput", 0)
        return outputs[index] if 0 <= index < len(outputs) else None

    # ---- levels -------------------------------------------------------------------------
    def _rep(self, node_id: str, namespace: str) -> str | None:
        """The child of `namespace` that holds `node_id` (itself or a group), or None."""
        ns = self.ns_of.get(node_id)
        if ns is None:
            return None
        if ns == namespace:
            return node_id
        pre = self._prefix[ns]
        depth = 0 if not namespace else namespace.count("/") + 1
        if len(pre) <= depth + 1 or pre[depth] != namespace:
            return None
        return group_id(pre[depth + 1])

    def _group_node(self, ns: str) -> dict[str, Any]:
        stats = self.groups.get(ns) or {}
        module_type = str(stats.get("moduleType") or "")
        return {
            "id": group_id(ns),
            "kind": "group",
            "label": ns.rsplit("/", 1)[-1],
            "op": module_type or "group",
            "moduleType": module_type,
            "namespace": ns,
            "params": stats.get("params", 0),
            "trainableParams": stats.get("trainableParams", 0),
            "macs": stats.get("macs", 0),
            "opCount": stats.get("opCount", 0),
            "childCount": len(self.subgroups.get(ns, ())) + len(self.ops.get(ns, ())),
            "inputs": [_tensor(t) for t in self.group_inputs.get(ns, {}).values()],
            "outputs": [{"shape": s, "dtype": None} for s in stats.get("outputShapes") or []],
            "attrs": {},
            "paramRefs": [],
            "overlays": dict(self.group_overlays.get(ns, {})),
            "entries": list(self.entries.get(ns, ())),
            "exits": list(self.exits.get(ns, ())),
        }

    def _op_node(self, nid: str) -> dict[str, Any]:
        node = self.nodes[nid]
        params = node.get("params")
        refs: list[dict[str, Any]] = []
        total = trainable = 0
        for p in params or ():
            shape = list(p["shape"])
            n = _numel(shape)
            flag = bool(p.get("trainable", True))
            total += n
            trainable += n if flag else 0
            refs.append({"name": p["name"], "shape": shape, "dtype": p["dtype"], "trainable": flag})
        attrs = node.get("attrs")
        overlays = self.overlays
        return {
            "id": nid,
            "kind": "op",
            "label": node.get("label") or nid,
            "op": node["op"],
            "moduleType": "",
            "namespace": self.ns_of[nid],
            "params": total,
            "trainableParams": trainable,
            "macs": node.get("macs", 0),
            "opCount": 1,
            "childCount": 0,
            "inputs": _tensors(node.get("inputs")),
            "outputs": _tensors(node.get("outputs")),
            "attrs": decode_value(attrs) if attrs else {},
            "paramRefs": refs,
            "overlays": {name: vals[nid] for name, vals in overlays.items() if nid in vals}
            if overlays
            else {},
        }

    def level(self, namespace: str) -> dict[str, Any]:
        """The direct children of `namespace` with the edges between them (docs/api.md).

        Answers are cached per namespace (at most `LEVEL_CACHE` of them); treat them as
        read-only."""
        with self._lock:
            cached = self._levels.get(namespace)
        if cached is not None:
            return cached
        try:
            answer = self._level(namespace)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelFormatError(
                f"graph JSON is malformed under namespace {namespace!r} "
                f"({type(exc).__name__}: {exc})"
            ) from exc
        with self._lock:
            _put(self._levels, namespace, answer)
        return answer

    def level_json(self, namespace: str) -> bytes:
        """`level` as strict JSON bytes, encoded once per namespace (cached like `level`)."""
        with self._lock:
            cached = self._encoded.get(namespace)
        if cached is not None:
            return cached
        body = encode_level(self.level(namespace))
        with self._lock:
            _put(self._encoded, namespace, body)
        return body

    def _level(self, namespace: str) -> dict[str, Any]:
        if namespace and namespace not in self.groups and namespace not in self.subgroups:
            if namespace not in self.ops:
                raise NotFoundError(f"the graph has no namespace {namespace!r}")
        children = self.subgroups.get(namespace, [])
        ops = self.ops.get(namespace, [])
        truncated = len(children) + len(ops) > self.max_level_nodes
        nodes = [self._group_node(ns) for ns in children[: self.max_level_nodes]]
        room = self.max_level_nodes - len(nodes)
        nodes += [self._op_node(i) for i in ops[: max(0, room)]]
        shown = {n["id"] for n in nodes}
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for edge in self.edges.get(namespace, []):
            a, b = self._rep(edge["src"], namespace), self._rep(edge["dst"], namespace)
            if a is None or b is None or a == b or a not in shown or b not in shown:
                continue
            item = merged.get((a, b))
            if item is None:
                t = _tensor(self._edge_tensor(edge))
                merged[(a, b)] = {"src": a, "dst": b, "shape": t["shape"], "dtype": t["dtype"],
                                  "count": 1}  # fmt: skip
            else:
                item["count"] += 1
        return {
            "namespace": namespace,
            "meta": self.meta,
            "overlayNames": sorted(self.overlays),
            "nodes": nodes,
            "edges": list(merged.values()),
            "inputs": self._ends(self.inputs, namespace, shown),
            "outputs": self._ends(self.outputs, namespace, shown),
            "truncated": truncated,
        }

    def _ends(self, ids: list[str], namespace: str, shown: set[str]) -> list[str]:
        out: list[str] = []
        for nid in ids:
            rep = self._rep(nid, namespace)
            if rep is not None and rep in shown and rep not in out:
                out.append(rep)
        return out

    # ---- overlay keys -> node ids --------------------------------------------------------
    def targets(self, key: str) -> list[str]:
        """The node ids a per-layer value named `key` belongs to (``[]`` if none).

        `key` is a module namespace as `run.watch` writes overlays (``layer1/0/conv1``), a
        module call name (``layer1.0.conv1``, ``#2`` for a second call dropped) or a
        parameter name (``layer1.0.conv1.weight``, as diagnosis events name gradients).
        Tried in order: the ops holding that parameter; the ops holding a parameter the
        module owns directly; the ops of a leaf namespace; the group node of a namespace."""
        with self._lock:
            if self._param_ops is None:
                by_param: dict[str, list[str]] = defaultdict(list)
                by_owner: dict[str, list[str]] = defaultdict(list)
                for node in self.node_list:
                    for p in node.get("params") or ():
                        name = str(p.get("name", ""))
                        by_param[name].append(node["id"])
                        owners = by_owner[owner_namespace(name)]
                        if not owners or owners[-1] != node["id"]:
                            owners.append(node["id"])
                self._param_ops, self._owner_ops = dict(by_param), dict(by_owner)
            param_ops, owner_ops = self._param_ops, self._owner_ops
        assert owner_ops is not None
        hit = self._targets.get(key)
        if hit is None:
            hit = self._targets[key] = self._find_targets(key, param_ops, owner_ops)
        return list(hit)

    def _find_targets(
        self, key: str, param_ops: dict[str, list[str]], owner_ops: dict[str, list[str]]
    ) -> list[str]:
        base = key.split("#", 1)[0]
        if base in param_ops:
            return list(param_ops[base])
        ns = module_namespace(base)
        if not ns:
            return []
        if ns in owner_ops:
            return list(owner_ops[ns])
        if ns in self.ops and ns not in self.subgroups:
            return list(self.ops[ns])
        if ns in self.subgroups or ns in self.groups:
            return [group_id(ns)]
        return []

    def _chain(self, nid: str) -> tuple[str, ...]:
        """The ids of the groups holding node `nid` (a group id: the groups around it)."""
        chain = self._chains.get(nid)
        if chain is None:
            ns = self.ns_of.get(nid)
            if ns is not None:
                chain = tuple(group_id(g) for g in self._prefix[ns][1:])
            elif nid.startswith("ns:") and len(nid) > 3:
                chain = tuple(group_id(g) for g in prefixes(nid[3:])[1:-1])
            else:
                chain = ()
            self._chains[nid] = chain
        return chain

    def spread(self, values: dict[str, float | None]) -> dict[str, float | None]:
        """`values` by node id plus, for every group holding one of them, the group's value
        (a non-finite value wins, else the largest: as `_worse` does for logged overlays)."""
        top: dict[str, float] = {}
        bad: dict[str, float | None] = {}
        inf = math.inf
        for nid, value in values.items():
            if value is None:
                continue
            chain = self._chains.get(nid) or self._chain(nid)
            if -inf < value < inf:
                for gid in chain:
                    if top.get(gid, -inf) < value:
                        top[gid] = value
            else:
                for gid in chain:
                    bad[gid] = _worse(bad.get(gid), value)
        out: dict[str, float | None] = dict(values)
        for gid, value in top.items():
            out[gid] = value if gid not in values else _worse(values[gid], value)
        for gid, bad_value in bad.items():
            out[gid] = _worse(out.get(gid), bad_value)
        return out

    def search(self, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """Groups and ops whose id, label, op or namespace contains `query` (case-insensitive)."""
        try:
            return self._search(query, limit)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelFormatError(
                f"graph JSON is malformed ({type(exc).__name__}: {exc})"
            ) from exc

    def _search(self, query: str, limit: int) -> list[dict[str, Any]]:
        needle = query.lower()
        if not needle:
            return []
        matches: list[dict[str, Any]] = []
        for ns, stats in self.groups.items():
            module_type = str(stats.get("moduleType") or "")
            if ns and (needle in ns.lower() or needle in module_type.lower()):
                matches.append({"id": group_id(ns), "label": ns.rsplit("/", 1)[-1],
                                "op": module_type or "group", "namespace": ns,
                                "kind": "group"})  # fmt: skip
                if len(matches) >= limit:
                    return matches
        for node in self.node_list:
            nid = node["id"]
            label = node.get("label") or ""
            if needle in f"{nid}\n{label}\n{node.get('op')}".lower():
                matches.append({"id": nid, "label": label or nid, "op": node.get("op"),
                                "namespace": self.ns_of[nid], "kind": "op"})  # fmt: skip
                if len(matches) >= limit:
                    break
        return matches


def _put(cache: dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= LEVEL_CACHE:
        cache.pop(next(iter(cache)))
    cache[key] = value
