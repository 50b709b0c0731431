"""Training overlays on the graph: ``/api/overlays`` (what a run's `run.watch` recorded, and
the diagnosis events placed on nodes) and ``/api/overlays/values`` (one step's values).

`run.watch` writes one ``overlay`` blob per logged step, ``{series: {key: value}}`` with
module namespaces as keys. Those are mapped here to the ids of the run's graph
(`GraphIndex.targets`), and every group gets the worst value of what it holds
(`GraphIndex.spread`), so a collapsed group is coloured too. The index of steps comes from
the blob rows (their ``series`` meta; older blobs are read once); a step's answer is the
latest blob at or before it, mapped once and cached (blobs are content-addressed, so a
path never changes meaning). ``nonfinite_step`` is derived: for each node, the first step
at which a non-finite diagnosis event names it or one of its watched values is NaN (a NaN
gradient or activation; an infinite *norm* is left out, since the sum of squares of large
finite values overflows to Inf without any value being non-finite).
``/api/overlays/node`` answers one node's value of one series at every logged step (the
inspector's sparkline) and the watched keys that map to no node of the graph (a layer the
graph's tracer or exporter fused away or renamed), so the page can say why a node has none.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
from collections import OrderedDict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.errors import NotFoundError, StoreError
from deepscope.graph.serialize import overlay_value
from deepscope.server import params
from deepscope.server.graph_index import GraphIndex, encode_level
from deepscope.server.routes.blobs import blob_file
from deepscope.server.routes.graph import _pick, cached_graph
from deepscope.server.state import ServedRun, app_state
from deepscope.store.protocol import BlobInfo

__all__ = ["SERIES_LABELS", "routes"]

KIND, TAG = "overlay", "watch"
NONFINITE = "nonfinite_step"
SERIES_LABELS = {
    "grad_norm": "gradient norm",
    "update_ratio": "update ratio",
    "dead_frac": "dead fraction",
    "act_std": "activation std",
    NONFINITE: "first non-finite step",
}
MAX_OVERLAY_BYTES = 64 * 1024 * 1024
MAX_EVENTS = 1000
CACHE = 256
MAX_POINTS = 200  # a node's series: at most this many steps, evenly picked, last one kept

Values = dict[str, float | None]

_lock = threading.Lock()
_mapped: OrderedDict[tuple[Any, ...], dict[str, Values]] = OrderedDict()
_series_of: OrderedDict[tuple[str, str], list[str]] = OrderedDict()
_first_bad: OrderedDict[tuple[Any, ...], dict[str, int]] = OrderedDict()
_encoded: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()  # one series at one blob


def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    with _lock:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > CACHE:
            cache.popitem(last=False)


def _recall(cache: OrderedDict[Any, Any], key: Any) -> Any:
    with _lock:
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
        return hit


def _read(reader: ServedRun, blob: BlobInfo) -> dict[str, dict[str, Any]]:
    path = blob_file(reader, blob)
    if path.stat().st_size > MAX_OVERLAY_BYTES:
        raise StoreError(f"overlay blob at step {blob.step} of run '{reader.name}' is too big")
    data = json.loads(path.read_bytes())
    if not isinstance(data, dict):
        raise StoreError(f"overlay blob at step {blob.step} of run '{reader.name}' is malformed")
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def _series(reader: ServedRun, blob: BlobInfo) -> list[str]:
    names = blob.meta.get("series")
    if isinstance(names, list):
        return [str(n) for n in names]
    key = (str(reader.directory), blob.path)
    hit: list[str] | None = _recall(_series_of, key)
    if hit is None:
        hit = sorted(_read(reader, blob))
        _remember(_series_of, key, hit)
    return hit


def _mapped_values(
    reader: ServedRun, blob: BlobInfo, gkey: Any, index: GraphIndex
) -> dict[str, Values]:
    """``{series: {node id: value}}`` of one overlay blob, groups included (cached)."""
    key = (gkey, blob.path)
    hit: dict[str, Values] | None = _recall(_mapped, key)
    if hit is not None:
        return hit
    out: dict[str, Values] = {}
    for name, values in _read(reader, blob).items():
        by_id: Values = {}
        for k, v in values.items():
            value = overlay_value(v)
            for nid in index.targets(str(k)):
                old = by_id.get(nid)
                by_id[nid] = value if old is None else _worst(old, value)
        out[name] = index.spread(by_id)
    _remember(_mapped, key, out)
    return out


def _unmapped(reader: ServedRun, blob: BlobInfo, index: GraphIndex) -> list[str]:
    """The keys of one overlay blob (any series) that map to no node of the graph."""
    keys = {str(k) for values in _read(reader, blob).values() for k in values}
    return sorted(k for k in keys if not index.targets(k))


def _worst(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return a if b is None else b
    if not math.isfinite(a) or not math.isfinite(b):
        return a if not math.isfinite(a) else b
    return max(a, b)


def _context(request: Request) -> tuple[ServedRun, list[BlobInfo], Any, GraphIndex]:
    run = params.text(request, "run")
    state = app_state(request)
    reader = state.run(run)
    blobs = sorted(reader.blobs(KIND, TAG), key=lambda b: (b.step, b.id))
    graph_blob = _pick(reader, request.query_params.get("tag") or None)
    gkey = (str(reader.directory), graph_blob.id, graph_blob.path)
    return reader, blobs, gkey, cached_graph(request).index()


def _first_nonfinite(
    reader: ServedRun, blobs: list[BlobInfo], gkey: Any, index: GraphIndex
) -> dict[str, int]:
    """Node id -> the first step a non-finite event names it or a watched value of it is
    NaN; groups get their earliest member's step."""
    key = (gkey, len(blobs), blobs[-1].id if blobs else None, reader.version())
    hit: dict[str, int] | None = _recall(_first_bad, key)
    if hit is not None:
        return hit
    first: dict[str, int] = {}
    for blob in blobs:
        for values in _mapped_values(reader, blob, gkey, index).values():
            for nid, v in values.items():
                if v is not None and math.isnan(v) and nid not in first:
                    first[nid] = blob.step
    for e in reader.events(limit=MAX_EVENTS):
        if e.layer and e.kind.startswith("nonfinite"):
            ids = index.targets(e.layer)
            for nid, v in index.spread(dict.fromkeys(ids, 0.0)).items():
                if v is not None and (nid not in first or first[nid] > e.step):
                    first[nid] = e.step
    _remember(_first_bad, key, first)
    return first


def overlays(request: Request) -> Response:
    """``{"run", "steps", "series": [{"name", "label", "steps"}], "badges": [...]}``: the
    per-layer series a run's watch recorded (with the steps each has) and its diagnosis
    events that name a layer, each with the node ids it maps to in the run's graph."""
    reader, blobs, gkey, index = _context(request)
    steps: dict[str, list[int]] = {}
    for blob in blobs:
        for name in _series(reader, blob):
            per = steps.setdefault(name, [])
            if not per or per[-1] != blob.step:
                per.append(blob.step)
    all_steps = sorted({b.step for b in blobs})
    badges: list[dict[str, Any]] = []
    for e in reader.events(limit=MAX_EVENTS):
        if not e.layer:
            continue
        ids = index.targets(e.layer)
        badges.append({"id": e.id, "step": e.step, "severity": e.severity, "kind": e.kind,
                       "layer": e.layer, "message": e.message, "nodes": ids,
                       "namespaces": [index.ns_of.get(i, i[3:]) for i in ids]})  # fmt: skip
    series = [
        {"name": n, "label": SERIES_LABELS.get(n, n.replace("_", " ")), "steps": s}
        for n, s in sorted(steps.items(), key=lambda kv: _order(kv[0]))
    ]
    if any(b["kind"].startswith("nonfinite") and b["nodes"] for b in badges) or any(
        math.isnan(v)
        for blob in blobs[-1:]
        for vals in _mapped_values(reader, blob, gkey, index).values()
        for v in vals.values()
        if v is not None
    ):
        series.append({"name": NONFINITE, "label": SERIES_LABELS[NONFINITE], "steps": all_steps})
    body = {"run": reader.name, "steps": all_steps, "series": series, "badges": badges}
    return Response(encode_level(body), media_type="application/json")


def _order(name: str) -> tuple[int, str]:
    known = list(SERIES_LABELS)
    return (known.index(name) if name in known else len(known), name)


def values(request: Request) -> Response:
    """``{"run", "series", "step", "values": {node id: value}}``: one series at the latest
    logged step at or before ``step`` (``step`` null and no values before the first)."""
    reader, blobs, gkey, index = _context(request)
    name = params.text(request, "series")
    step = params.integer(request, "step", default=2**62, minimum=-(2**62), maximum=2**62)
    if name == NONFINITE:
        first = _first_nonfinite(reader, blobs, gkey, index)
        shown: Values = {nid: float(s) for nid, s in first.items() if s <= step}
        at = max((b.step for b in blobs if b.step <= step), default=None)
        body = {"run": reader.name, "series": name, "step": at, "values": shown}
        return Response(encode_level(body), media_type="application/json")
    having = [b for b in blobs if name in _series(reader, b)]
    if not having and blobs:
        raise NotFoundError(
            f"run '{reader.name}' has no overlay series {name!r}; see /api/overlays"
        )
    pos = bisect.bisect_right([b.step for b in having], step) - 1
    if pos < 0:
        body = {"run": reader.name, "series": name, "step": None, "values": {}}
    else:
        blob = having[pos]
        key = (gkey, blob.path, name)
        encoded: bytes | None = _recall(_encoded, key)
        if encoded is None:
            got = _mapped_values(reader, blob, gkey, index).get(name, {})
            body = {"run": reader.name, "series": name, "step": blob.step, "values": got}
            encoded = encode_level(body)
            _remember(_encoded, key, encoded)
        return Response(encoded, media_type="application/json")
    return Response(encode_level(body), media_type="application/json")


def node_series(request: Request) -> Response:
    """``{"run", "series", "node", "points": [{"step", "value"}], "unmapped": [keys]}``: one
    node's value of one series at each logged step (at most `MAX_POINTS`, evenly picked,
    the last kept); ``unmapped`` are the watched keys of the latest step that map to no
    node of the graph."""
    reader, blobs, gkey, index = _context(request)
    name = params.text(request, "series")
    node = params.text(request, "node")
    unmapped = _unmapped(reader, blobs[-1], index) if blobs else []
    points: list[dict[str, Any]] = []
    if name == NONFINITE:
        first = _first_nonfinite(reader, blobs, gkey, index).get(node)
        if first is not None:
            points.append({"step": first, "value": float(first)})
    else:
        having = [b for b in blobs if name in _series(reader, b)]
        if not having and blobs:
            raise NotFoundError(
                f"run '{reader.name}' has no overlay series {name!r}; see /api/overlays"
            )
        if len(having) > MAX_POINTS:
            stride = (len(having) - 1) / (MAX_POINTS - 1)
            having = [having[round(i * stride)] for i in range(MAX_POINTS)]
        for blob in having:
            value = _mapped_values(reader, blob, gkey, index).get(name, {}).get(node)
            points.append({"step": blob.step, "value": value})
    body = {"run": reader.name, "series": name, "node": node, "points": points,
            "unmapped": unmapped}  # fmt: skip
    return Response(encode_level(body), media_type="application/json")


routes = [
    Route("/api/overlays", overlays, methods=["GET"]),
    Route("/api/overlays/values", values, methods=["GET"]),
    Route("/api/overlays/node", node_series, methods=["GET"]),
]
