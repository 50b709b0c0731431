"""``/api/events``: diagnostic events (NaN origin, exploding gradients, ...) of runs."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.state import app_state

MAX_EVENTS = 1000


def events(request: Request) -> Response:
    """``{"events": [{"run", "id", "step", "wallTime", "severity", "kind", "layer", "message"}]}``
    (the latest ``limit`` per run, oldest first)."""
    names = params.texts(request, "run")
    limit = params.integer(request, "limit", default=200, minimum=0, maximum=MAX_EVENTS)
    state = app_state(request)
    out: list[dict[str, Any]] = []
    for name in names:
        for e in state.run(name).events(limit=limit):
            out.append({"run": name, "id": e.id, "step": e.step, "wallTime": e.wall_time,
                        "severity": e.severity, "kind": e.kind, "layer": e.layer,
                        "message": e.message})  # fmt: skip
    out.sort(key=lambda e: (e["wallTime"], e["run"], e["id"]))
    return StrictJSONResponse({"events": out})


routes = [Route("/api/events", events, methods=["GET"])]
