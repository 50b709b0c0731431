"""`create_app(settings)`: the dashboard's Starlette app.

Routes come from one module per panel (`deepscope.server.routes`); the security
middleware (`deepscope.server.security`) wraps every one of them, static files included.
Every sync ``/api/`` route runs through the `ReadGate` (`deepscope.server.gate`), so one
slow or hostile run can never take all the worker threads.
Imports no torch.

Example:
    >>> from pathlib import Path
    >>> app = create_app(Settings(logdir=Path("runs"), token="s3cret"))  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from deepscope.server import params
from deepscope.server.responses import error_response
from deepscope.server.routes import (
    attribution,
    events,
    graph,
    health,
    histograms,
    images,
    model_weights,
    overlays,
    projector,
    runs,
    scalars,
    static,
    stream,
    text,
    views,
    workbench,
)
from deepscope.server.security import SecurityMiddleware
from deepscope.server.settings import Settings
from deepscope.server.state import AppState, app_state

__all__ = ["Settings", "create_app"]

# static last: its catch-all route must not shadow the API
PANELS = (health, runs, scalars, histograms, images, text, graph, overlays, events, attribution,
          views, model_weights, projector, workbench, stream, static)  # fmt: skip


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    name = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}.get(
        exc.status_code, "HTTPError"
    )
    return error_response(exc.status_code, name, str(exc.detail))


def gated(endpoint: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
    """`endpoint` (a sync route) run through the app's `ReadGate`, keyed by its ``run``
    parameters: bounded reads per run, its own worker threads, and a deadline."""

    @functools.wraps(endpoint)
    async def call(request: Request) -> Response:
        runs = request.query_params.getlist("run")[: params.MAX_REPEAT]
        return await app_state(request).gate.call(runs, endpoint, request)

    return call


def _through_gate(route: BaseRoute) -> BaseRoute:
    """Every sync ``/api/`` route reads runs: send it through the gate (new routes too)."""
    if not isinstance(route, Route) or not route.path.startswith("/api/"):
        return route
    if inspect.iscoroutinefunction(route.endpoint):
        return route
    return Route(route.path, gated(route.endpoint), methods=route.methods, name=route.name)


def create_app(settings: Settings) -> Starlette:
    """The dashboard app for `settings` (see `Settings`); serve it with uvicorn."""
    route_list: list[BaseRoute] = [_through_gate(r) for panel in PANELS for r in panel.routes]
    security = Middleware(
        SecurityMiddleware,
        token=settings.token,
        allowed_hosts=settings.hosts(),
        max_body=settings.max_body,
        max_query=settings.max_query,
        body_timeout=settings.body_timeout,
    )
    app = Starlette(
        routes=route_list,
        middleware=[security],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.deepscope = AppState(settings)
    return app
