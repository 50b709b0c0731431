"""The graph panel: ``/api/graph`` (whole IR), ``/api/graphs`` (graphs of a run),
``/api/graph/level`` (one namespace's children) and ``/api/graph/search``.

A graph comes from a run's "graph" blob (``run=...``, optional ``tag``) or, under
``deepscope view``, from the served model (``model=1``). Parsed graphs and their level
indexes are cached (LRU), so a 100k-node graph is parsed once; a run's graph is indexed
straight from its parsed JSON and each level is encoded once.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.errors import NotFoundError, StoreError
from deepscope.graph.serialize import check_version, loads
from deepscope.server import params
from deepscope.server.graph_cache import CachedGraph
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.routes.blobs import blob_file
from deepscope.server.state import ServedRun, app_state, require_model
from deepscope.store.protocol import BlobInfo

MAX_GRAPH_BYTES = 512 * 1024 * 1024
MAX_MATCHES = 500


def _pick(reader: ServedRun, tag: str | None) -> BlobInfo:
    blobs = reader.blobs("graph", tag)
    if not blobs:
        where = f"tag {tag!r}" if tag is not None else "any tag"
        raise NotFoundError(f"run '{reader.name}' has no graph under {where}; log one with "
                            "run.log_graph(model, example_inputs)")  # fmt: skip
    if tag is None:
        named = [b for b in blobs if b.tag == "model"]
        blobs = named or blobs
    return blobs[-1]


def _load(reader: ServedRun, blob: BlobInfo) -> dict[str, Any]:
    """The blob's wire dict, parsed but not turned into the IR (the level index reads it)."""
    path = blob_file(reader, blob)
    if path.stat().st_size > MAX_GRAPH_BYTES:
        raise StoreError(f"graph file of run '{reader.name}' is over {MAX_GRAPH_BYTES} bytes")
    data = loads(path.read_bytes())
    check_version(data)
    return data  # type: ignore[no-any-return]


def cached_graph(request: Request) -> CachedGraph:
    """The graph a request names (``model=1`` or ``run`` + optional ``tag``), cached."""
    state = app_state(request)
    if params.flag(request, "model"):
        model = require_model(request).settings.model_graph
        assert model is not None
        return state.graphs.get(("model",), lambda: model)
    run = params.text(request, "run")
    tag = request.query_params.get("tag") or None
    reader = state.run(run)
    blob = _pick(reader, tag)
    key = ("run", str(reader.directory), blob.id, blob.path)
    return state.graphs.get(key, lambda: _load(reader, blob))


def graph(request: Request) -> Response:
    """The Graph IR JSON (``deepscope.graph.serialize``)."""
    text = cached_graph(request).json()
    return Response(text, media_type="application/json")


def graphs(request: Request) -> Response:
    """``{"graphs": [{"tag", "step", "id"}]}``: the graphs logged in a run."""
    run = params.text(request, "run")
    items = app_state(request).run(run).blobs("graph")
    return StrictJSONResponse(
        {"graphs": [{"tag": b.tag, "step": b.step, "id": b.id} for b in items]}
    )


def level(request: Request) -> Response:
    """The children of ``namespace`` ("" = top) with aggregated edges (docs/api.md)."""
    namespace = params.text(request, "namespace", default="")
    body = cached_graph(request).index().level_json(namespace)
    return Response(body, media_type="application/json")


def search(request: Request) -> Response:
    """``{"matches": [{"id", "label", "op", "namespace", "kind"}]}`` by substring."""
    query = params.text(request, "q")
    limit = params.integer(request, "limit", default=50, minimum=1, maximum=MAX_MATCHES)
    matches = cached_graph(request).index().search(query, limit=limit)
    return StrictJSONResponse({"matches": matches})


routes = [
    Route("/api/graph", graph, methods=["GET"]),
    Route("/api/graphs", graphs, methods=["GET"]),
    Route("/api/graph/level", level, methods=["GET"]),
    Route("/api/graph/search", search, methods=["GET"]),
]
