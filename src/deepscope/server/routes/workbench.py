"""The live-model workbench (`deepscope.explore`, ``deepscope view MODEL --inputs``):
views of the served model computed on demand.

- ``/api/workbench``: the inputs, class names and what the model takes (`WorkbenchInfo`).
- ``/api/workbench/input?index=``: input `index` as a PNG thumbnail (image inputs).
- ``/api/workbench/tabs?node=``: which views apply to a graph node (`WorkbenchTabs`).
- ``/api/workbench/view?view=&node=&input=&target=``: compute (or join, or read from the
  cache) one view and answer its meta and part names (`WorkbenchView`); a view that raises
  is a 422 whose message is the error, and the server goes on serving.
- ``/api/workbench/part?key=&part=``: one binary part of a finished view (an array
  envelope, or PNG).
- ``/api/workbench/jobs``: every queued or running view with its progress (`WorkbenchJobs`).

This module imports no torch: the live model is behind `WorkbenchSource`, which
`deepscope.workbench` implements and attaches to the app with `attach`. A request whose
client goes away releases its job; a job every caller left before it started is never
computed (`deepscope.workbench.jobs`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.errors import NotFoundError
from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse, error_response
from deepscope.views import envelope

__all__ = ["LiveJob", "WorkbenchSource", "attach", "routes"]

VIEW_NAMES = ("predict", "activations", "gradients", "gradcam", "saliency", "attention", "units")
NO_SOURCE = (
    "this server holds no live model: start one with deepscope.explore(model, inputs) or "
    "`deepscope view MODEL --inputs PATH`"
)


class LiveResult(Protocol):
    """A finished view: JSON meta and named parts (numpy arrays or PNG bytes)."""

    meta: dict[str, Any]
    parts: dict[str, Any]


class LiveJob(Protocol):
    """One computation, shared by every request of its key."""

    key: str
    state: str
    result: LiveResult | None
    error: str | None
    error_type: str
    started: float | None
    finished: float | None
    created: float

    def done(self) -> bool: ...

    def add_done_callback(self, fn: Callable[[], None]) -> None: ...

    def release(self) -> None: ...


class WorkbenchSource(Protocol):
    """What the server needs of a live model (`deepscope.workbench.source.Workbench`)."""

    def info(self) -> dict[str, Any]: ...

    def input_png(self, index: int) -> bytes | None: ...

    def tabs(self, node: str) -> dict[str, Any]: ...

    def submit(self, view: str, node: str, index: int, target: int | None) -> LiveJob: ...

    def finished(self, key: str) -> LiveJob | None: ...

    def jobs(self) -> list[dict[str, Any]]: ...


def attach(app: Starlette, source: WorkbenchSource) -> None:
    """Serve `source`'s views from `app` (call before the server starts)."""
    app.state.workbench = source


def _source(request: Request) -> WorkbenchSource:
    try:
        source: WorkbenchSource | None = request.app.state.workbench
    except AttributeError:
        source = None
    if source is None:
        raise NotFoundError(NO_SOURCE)
    return source


async def info(request: Request) -> Response:
    """`WorkbenchInfo`."""
    return StrictJSONResponse(_source(request).info())


async def input_image(request: Request) -> Response:
    """Input ``index`` as PNG (404 when the inputs are not images)."""
    source = _source(request)
    index = params.integer(request, "index", default=0, minimum=0, maximum=1 << 30)
    png = source.input_png(index)
    if png is None:
        raise NotFoundError(f"input {index} has no picture (not an image, or out of range)")
    return Response(png, media_type="image/png",
                    headers={"cache-control": "private, max-age=3600"})  # fmt: skip


async def tabs(request: Request) -> Response:
    """`WorkbenchTabs` of ``node``."""
    return StrictJSONResponse(_source(request).tabs(params.text(request, "node")))


async def _disconnected(request: Request) -> None:
    """Return when the client goes away (the body of a GET is already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def view(request: Request) -> Response:
    """Compute, join or read one view; a client that leaves releases its job."""
    source = _source(request)
    name = params.text(request, "view")
    if name not in VIEW_NAMES:
        raise params.BadRequestError(f"view must be one of {VIEW_NAMES}, not {name[:40]!r}")
    node = params.text(request, "node", default="")
    index = params.integer(request, "input", default=0, minimum=0, maximum=1 << 30)
    target = params.optional_integer(request, "target")
    if target is not None and target < 0:
        target = None  # -1: the predicted class
    job = source.submit(name, node, index, target)
    if not job.done():
        loop = asyncio.get_running_loop()
        finished = loop.create_future()

        def settle() -> None:
            if not finished.done():
                finished.set_result(None)

        def wake() -> None:
            loop.call_soon_threadsafe(settle)

        job.add_done_callback(wake)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({finished, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not job.done():
            job.release()
            return error_response(499, "ClientClosed", "the client went away")
    if job.result is None:
        if job.error is None:
            return error_response(503, "Cancelled", "the view was cancelled; ask again")
        return error_response(422, "ViewFailed", f"{job.error_type}: {job.error}")
    seconds = (job.finished or 0.0) - (job.started or job.created)
    body = {"key": job.key, "view": name, "node": node, "input": index,
            "meta": job.result.meta, "parts": sorted(job.result.parts),
            "seconds": round(max(0.0, seconds), 4)}  # fmt: skip
    return StrictJSONResponse(body)


async def part(request: Request) -> Response:
    """One part of a finished view: an array envelope, or PNG bytes."""
    source = _source(request)
    key = params.text(request, "key")
    name = params.text(request, "part")
    job = source.finished(key)
    value = None if job is None or job.result is None else job.result.parts.get(name)
    if value is None:
        raise NotFoundError(f"no finished view part {name[:40]!r} for key {key[:120]!r}")
    headers = {"cache-control": "private, max-age=3600"}
    if isinstance(value, bytes):
        return Response(value, media_type="image/png", headers=headers)
    return Response(envelope.encode(value, "float32"), media_type=envelope.CONTENT_TYPE,
                    headers=headers)  # fmt: skip


async def jobs(request: Request) -> Response:
    """`WorkbenchJobs`: queued and running views with their progress."""
    return StrictJSONResponse({"jobs": _source(request).jobs()})


routes = [
    Route("/api/workbench", info, methods=["GET"]),
    Route("/api/workbench/input", input_image, methods=["GET"]),
    Route("/api/workbench/tabs", tabs, methods=["GET"]),
    Route("/api/workbench/view", view, methods=["GET"]),
    Route("/api/workbench/part", part, methods=["GET"]),
    Route("/api/workbench/jobs", jobs, methods=["GET"]),
]
