"""``/api/runs`` (paginated run list) and ``/api/tags`` (tags of one or more runs)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.state import app_state
from deepscope.store.protocol import RunInfo

MAX_RUNS_PAGE = 1000


def run_json(info: RunInfo) -> dict[str, Any]:
    """The wire form of a run."""
    return {
        "name": info.name,
        "status": info.status,
        "created": info.created,
        "heartbeat": info.heartbeat,
        "finished": info.finished,
        "config": info.config,
    }


def runs(request: Request) -> Response:
    """``{"runs": [...], "total"}``: one page of runs whose name contains ``filter``."""
    offset = params.integer(request, "offset", default=0, minimum=0, maximum=10**9)
    limit = params.integer(request, "limit", default=500, minimum=0, maximum=MAX_RUNS_PAGE)
    needle = params.text(request, "filter", default="")
    state = app_state(request)
    if state.settings.logdir is None:
        return StrictJSONResponse({"runs": [], "total": 0})
    store = state.store()
    page = store.runs(offset=offset, limit=limit, filter=needle)
    total = store.count_runs(filter=needle)
    return StrictJSONResponse({"runs": [run_json(r) for r in page], "total": total})


def tags(request: Request) -> Response:
    """``{"tags": [{"run", "tag", "kind", "count", "firstStep", "lastStep"}]}``."""
    names = params.texts(request, "run")
    kind = request.query_params.get("kind")
    state = app_state(request)
    out: list[dict[str, Any]] = []
    for name in names:
        for t in state.run(name).tags():
            if kind is None or t.kind == kind:
                out.append({"run": name, "tag": t.tag, "kind": t.kind, "count": t.count,
                            "firstStep": t.first_step, "lastStep": t.last_step})  # fmt: skip
    return StrictJSONResponse({"tags": out})


routes = [
    Route("/api/runs", runs, methods=["GET"]),
    Route("/api/tags", tags, methods=["GET"]),
]
