"""``/api/histograms``: downsampled histograms of one tag (non-finite counts included)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.state import app_state

MAX_POINTS = 500


def histograms(request: Request) -> Response:
    """``{"run", "tag", "histograms": [{"step", "wallTime", "edges", "counts", ...}]}``."""
    run, tag = params.text(request, "run"), params.text(request, "tag")
    max_points = params.integer(request, "maxPoints", default=100, minimum=1, maximum=MAX_POINTS)
    items = app_state(request).run(run).histograms(tag, max_points=max_points)
    return StrictJSONResponse({"run": run, "tag": tag, "histograms": [
        {"step": h.step, "wallTime": h.wall_time, "edges": h.edges, "counts": h.counts,
         "count": h.count, "nNan": h.n_nan, "nPosinf": h.n_posinf, "nNeginf": h.n_neginf,
         "min": h.min, "max": h.max, "sum": h.sum, "sumSq": h.sum_sq}
        for h in items
    ]})  # fmt: skip


routes = [Route("/api/histograms", histograms, methods=["GET"])]
