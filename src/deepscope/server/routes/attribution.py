"""``/api/attributions``: attribution maps logged in a run (images served by ``/api/blob``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.routes.blobs import MAX_ITEMS, blob_item
from deepscope.server.state import app_state


def attributions(request: Request) -> Response:
    """``{"items": [{"id", "step", "meta", "url"}]}``; ``tag`` optional (all tags when absent)."""
    run = params.text(request, "run")
    tag = request.query_params.get("tag")
    limit = params.integer(request, "limit", default=MAX_ITEMS, minimum=1, maximum=MAX_ITEMS)
    items = app_state(request).run(run).blobs("attribution", tag, limit=limit)
    return StrictJSONResponse(
        {"run": run, "items": [{**blob_item(run, b), "tag": b.tag} for b in items]}
    )


routes = [Route("/api/attributions", attributions, methods=["GET"])]
