"""`create_app(settings)`: the dashboard's Starlette app.

Routes come from one module per panel (`deepscope.server.routes`); the security
middleware (`deepscope.server.security`) wraps every one of them, static files included.
Imports no torch.

Example:
    >>> from pathlib import Path
    >>> app = create_app(Settings(logdir=Path("runs"), token="s3cret"))  # doctest: +SKIP
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from deepscope.server.responses import error_response
from deepscope.server.routes import (
    attribution,
    events,
    graph,
    health,
    histograms,
    images,
    runs,
    scalars,
    static,
    stream,
    text,
)
from deepscope.server.security import SecurityMiddleware
from deepscope.server.settings import Settings
from deepscope.server.state import AppState

__all__ = ["Settings", "create_app"]

# static last: its catch-all route must not shadow the API
PANELS = (health, runs, scalars, histograms, images, text, graph, events, attribution, stream,
          static)  # fmt: skip


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    name = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}.get(
        exc.status_code, "HTTPError"
    )
    return error_response(exc.status_code, name, str(exc.detail))


def create_app(settings: Settings) -> Starlette:
    """The dashboard app for `settings` (see `Settings`); serve it with uvicorn."""
    route_list: list[BaseRoute] = [r for panel in PANELS for r in panel.routes]
    security = Middleware(
        SecurityMiddleware,
        token=settings.token,
        allowed_hosts=settings.hosts(),
        max_body=settings.max_body,
        max_query=settings.max_query,
    )
    app = Starlette(
        routes=route_list,
        middleware=[security],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.deepscope = AppState(settings)
    return app
