"""``/api/runs`` (paginated, cached run list; unreadable runs flagged) and ``/api/tags``."""

from __future__ import annotations

import sqlite3
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.errors import StoreError
from deepscope.server import params
from deepscope.server.listing import Listed
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.state import app_state
from deepscope.store.protocol import RunInfo

MAX_RUNS_PAGE = 1000


def run_json(info: RunInfo) -> dict[str, Any]:
    """The wire form of a run."""
    return Listed(info.name, info).to_json()


async def runs(request: Request) -> Response:
    """``{"runs": [...], "total"}``: one page of runs whose name contains ``filter``.

    A run that cannot be read is listed with ``status: "unreadable"`` and ``error`` (the
    reason); the others are served as usual. Served from a cache kept between changes.
    """
    offset = params.integer(request, "offset", default=0, minimum=0, maximum=10**9)
    limit = params.integer(request, "limit", default=500, minimum=0, maximum=MAX_RUNS_PAGE)
    needle = params.text(request, "filter", default="")
    state = app_state(request)
    if state.settings.logdir is None:
        return StrictJSONResponse({"runs": [], "total": 0})
    listing = await anyio.to_thread.run_sync(state.listing)
    page, total = await listing.page(offset=offset, limit=limit, filter=needle)
    return StrictJSONResponse({"runs": [row.to_json() for row in page], "total": total})


def tags(request: Request) -> Response:
    """``{"tags": [{"run", "tag", "kind", "count", "firstStep", "lastStep"}]}``."""
    names = params.texts(request, "run")
    kind = request.query_params.get("kind")
    state = app_state(request)
    out: list[dict[str, Any]] = []
    for name in names:
        reader = state.run(name)  # unknown run -> 404
        try:
            found = reader.tags()
        except (StoreError, sqlite3.Error, ValueError, TypeError):
            if len(names) == 1:
                raise
            continue  # one unreadable run (see /api/runs) does not hide the others' tags
        for t in found:
            if kind is None or t.kind == kind:
                out.append({"run": name, "tag": t.tag, "kind": t.kind, "count": t.count,
                            "firstStep": t.first_step, "lastStep": t.last_step})  # fmt: skip
    return StrictJSONResponse({"tags": out})


routes = [
    Route("/api/runs", runs, methods=["GET"]),
    Route("/api/tags", tags, methods=["GET"]),
]
