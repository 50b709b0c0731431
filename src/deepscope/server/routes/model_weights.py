"""Weights of the model shown by ``deepscope view MODEL`` (or of ``deepscope diff A B
--serve``): ``/api/model/weights?node=<id>`` (the parameters of one graph node: statistics,
ESD, diff row, which arrays exist), ``/api/model/weights/table`` (every tensor, for the
Weights tab and graph colour-by) and ``/api/model/weights/array?name=&part=`` (a heatmap,
filter tiles or Δ heatmap as a binary envelope).

Values come from `Settings.model_weights` (a `WeightsSource` the command made: numpy only,
tensors read on first request and cached there); this module imports no torch and no
analysis. A group node (``ns:<namespace>``) stands for every parameter under it.
"""

from __future__ import annotations

import threading
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.errors import NotFoundError
from deepscope.graph.ir import Graph
from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.settings import WeightsSource
from deepscope.server.state import app_state
from deepscope.views import envelope

MAX_NODE_TENSORS = 64
PARTS = ("heatmap", "filters", "delta")
MAX_SIDE = 2048

_index_lock = threading.Lock()
_indexes: dict[int, tuple[Graph, dict[str, list[str]]]] = {}


def _source(request: Request) -> WeightsSource:
    source = app_state(request).settings.model_weights
    if source is None:
        raise params.BadRequestError(
            "this server has no model weights: open a model file with `deepscope view MODEL` "
            "or compare two with `deepscope diff A B --serve`"
        )
    return source


def _node_index(graph: Graph) -> dict[str, list[str]]:
    """Node id -> parameter names; ``ns:<namespace>`` -> every parameter under it."""
    with _index_lock:
        hit = _indexes.get(id(graph))
        if hit is not None and hit[0] is graph:
            return hit[1]
    index: dict[str, list[str]] = {}
    for node in graph.nodes:
        names = [p.name for p in node.params]
        index[node.id] = names
        parts = node.namespace.split("/") if node.namespace else []
        for i in range(len(parts) + 1):
            index.setdefault("ns:" + "/".join(parts[:i]), []).extend(names)
    index = {k: list(dict.fromkeys(v)) for k, v in index.items()}
    with _index_lock:
        _indexes.clear()  # one served model per process
        _indexes[id(graph)] = (graph, index)
    return index


def node_weights(request: Request) -> Response:
    """``{"node", "tensors": [...], "missing"}`` for ``node=<id>`` of the served graph (or
    ``name=`` repeated: those tensors); at most `MAX_NODE_TENSORS` tensors."""
    source = _source(request)
    node = request.query_params.get("node")
    if node is not None:
        node = params.text(request, "node")
        graph = app_state(request).settings.model_graph
        index = _node_index(graph) if graph is not None else {}
        if node not in index:
            raise NotFoundError(f"the served graph has no node {node[:80]!r}")
        names = index[node]
    else:
        names = params.texts(request, "name")
        node = ""
    tensors, missing = source.tensors(names[:MAX_NODE_TENSORS])
    body: dict[str, Any] = {"node": node, "tensors": tensors,
                            "missing": missing + names[MAX_NODE_TENSORS:]}  # fmt: skip
    return StrictJSONResponse(body)


def table(request: Request) -> Response:
    """`ModelWeightsTable`: every tensor's statistics (read once, then cached);
    ``compute=0``: only those already read, and the diff rows (reads nothing)."""
    compute = params.flag(request, "compute") if "compute" in request.query_params else True
    return StrictJSONResponse(_source(request).table(compute))


def array(request: Request) -> Response:
    """One array of tensor ``name``: ``part`` is heatmap, filters or delta (a diff)."""
    source = _source(request)
    name = params.text(request, "name")
    part = params.text(request, "part", default="heatmap")
    if part not in PARTS:
        raise params.BadRequestError(f"part must be one of {PARTS}, not {part[:40]!r}")
    max_size = params.integer(request, "maxSize", default=MAX_SIDE, minimum=1, maximum=MAX_SIDE)
    arr = source.array(name, part)
    if arr is None:
        raise NotFoundError(f"tensor {name[:80]!r} has no {part} here")
    if part != "filters" and arr.ndim == 2 and max(arr.shape) > max_size:
        from deepscope.views.kinds.weights import maxabs_downsample

        arr = maxabs_downsample(arr, max_size)
    data = envelope.encode(arr, "uint8" if part == "filters" else "float32")
    return Response(
        data,
        media_type=envelope.CONTENT_TYPE,
        headers={"cache-control": "private, max-age=3600", "x-content-type-options": "nosniff"},
    )


routes = [
    Route("/api/model/weights", node_weights, methods=["GET"]),
    Route("/api/model/weights/table", table, methods=["GET"]),
    Route("/api/model/weights/array", array, methods=["GET"]),
]
