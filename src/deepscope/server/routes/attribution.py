"""``/api/attributions``: attribution maps logged in a run (images served by ``/api/blob``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.routes.blobs import MAX_ITEMS, blob_item, blob_url
from deepscope.server.state import app_state


def attributions(request: Request) -> Response:
    """``{"items": [{"id", "tag", "step", "meta", "url", "inputId", "inputUrl"}]}``; ``tag``
    optional (all tags when absent). ``inputId``/``inputUrl`` name the input image logged
    with the map (same tag, step and ``meta.input_index``), or are null."""
    run = params.text(request, "run")
    tag = request.query_params.get("tag")
    limit = params.integer(request, "limit", default=MAX_ITEMS, minimum=1, maximum=MAX_ITEMS)
    reader = app_state(request).run(run)
    items = reader.blobs("attribution", tag, limit=limit)
    inputs = {
        (b.tag, b.step, b.meta.get("input_index")): b.id
        for b in reader.blobs("attribution_input", tag, limit=limit)
    }
    out: list[dict[str, Any]] = []
    for b in items:
        input_id = inputs.get((b.tag, b.step, b.meta.get("input_index")))
        out.append(
            {
                **blob_item(run, b),
                "tag": b.tag,
                "inputId": input_id,
                "inputUrl": None if input_id is None else blob_url(run, input_id),
            }
        )
    return StrictJSONResponse({"run": run, "items": out})


routes = [Route("/api/attributions", attributions, methods=["GET"])]
