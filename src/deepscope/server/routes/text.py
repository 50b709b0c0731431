"""``/api/text``: logged text of a tag (plain text; the frontend never renders it as HTML)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.routes.blobs import read_text
from deepscope.server.state import app_state

MAX_TEXTS = 200


def text(request: Request) -> Response:
    """``{"texts": [{"step", "wallTime", "text"}]}`` (the latest ``limit``, oldest first)."""
    run, tag = params.text(request, "run"), params.text(request, "tag")
    limit = params.integer(request, "limit", default=MAX_TEXTS, minimum=1, maximum=MAX_TEXTS)
    reader = app_state(request).run(run)
    items = reader.blobs("text", tag, limit=limit)
    texts = [{"step": b.step, "wallTime": b.wall_time, "text": read_text(reader, b)} for b in items]
    return StrictJSONResponse({"run": run, "tag": tag, "texts": texts})


routes = [Route("/api/text", text, methods=["GET"])]
