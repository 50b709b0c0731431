"""``/api/images`` (images of a tag) and ``/api/blob`` (a blob's bytes, by id only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.routes.blobs import MAX_ITEMS, blob_file, blob_item, content_type
from deepscope.server.state import app_state


def images(request: Request) -> Response:
    """``{"run", "tag", "images": [{"id", "step", "wallTime", "meta", "url"}]}``."""
    run, tag = params.text(request, "run"), params.text(request, "tag")
    limit = params.integer(request, "limit", default=MAX_ITEMS, minimum=1, maximum=MAX_ITEMS)
    items = app_state(request).run(run).blobs("image", tag, limit=limit)
    return StrictJSONResponse(
        {"run": run, "tag": tag, "images": [blob_item(run, b) for b in items]}
    )


def blob(request: Request) -> Response:
    """The bytes of blob ``id`` of ``run`` with an allow-listed content type."""
    run = params.text(request, "run")
    blob_id = params.integer(request, "id", default=-1, minimum=0, maximum=2**62)
    if blob_id < 0:
        raise params.BadRequestError("query parameter 'id' is required")
    reader = app_state(request).run(run)
    path = blob_file(reader, reader.blob(blob_id))
    return FileResponse(
        path,
        media_type=content_type(path),
        headers={"cache-control": "private, max-age=86400", "x-content-type-options": "nosniff"},
    )


routes = [
    Route("/api/images", images, methods=["GET"]),
    Route("/api/blob", blob, methods=["GET"]),
]
