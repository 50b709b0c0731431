"""``/api/health``: liveness and the mode (a log directory, or one model under ``view``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope import __version__
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.state import app_state


async def health(request: Request) -> Response:
    """``{"ok": true, "version", "mode": "logdir" | "model"}``. Async: it never waits for a
    worker thread, so it answers while slow run reads hold threads."""
    mode = "model" if app_state(request).model_mode() else "logdir"
    return StrictJSONResponse({"ok": True, "version": __version__, "mode": mode})


routes = [Route("/api/health", health, methods=["GET"])]
