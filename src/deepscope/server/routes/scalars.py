"""``/api/scalars``: one downsampled scalar series (min/max buckets, non-finite kept)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.state import app_state

MAX_POINTS = 10_000


def scalars(request: Request) -> Response:
    """``{"run", "tag", "points": [[step, wallTime, value], ...]}``."""
    run, tag = params.text(request, "run"), params.text(request, "tag")
    max_points = params.integer(request, "maxPoints", default=2000, minimum=2, maximum=MAX_POINTS)
    start = params.optional_integer(request, "startStep")
    end = params.optional_integer(request, "endStep")
    series = (
        app_state(request)
        .run(run)
        .scalars(tag, max_points=max_points, start_step=start, end_step=end)
    )
    points = [[p.step, p.wall_time, p.value] for p in series]
    return StrictJSONResponse({"run": run, "tag": tag, "points": points})


routes = [Route("/api/scalars", scalars, methods=["GET"])]
