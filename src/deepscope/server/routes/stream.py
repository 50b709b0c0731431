"""``/api/stream``: server-sent events for live runs.

Every stream shares one `VersionPoller` (`deepscope.server.poller`): one poll at a time, at
most one per `Settings.poll_interval` seconds, however many streams are open, and a
`version()` query only for runs whose ``run.db`` changed. When a run's version grows,
``event: update`` carries ``{"run", "version"}``. A ``: ping`` comment goes out every
`Settings.ping_interval` seconds so proxies keep the connection open. Starlette ends the
generator when the client disconnects. ``event: projection`` carries the projector's job
changes (`deepscope.server.routes.projector.projection_events`), checked at each tick.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from deepscope.server import params
from deepscope.server.poller import VersionPoller
from deepscope.server.routes.projector import projection_events
from deepscope.server.state import AppState, app_state
from deepscope.store.jsonenc import dumps

MAX_STREAM_RUNS = 100


def sse(event: str, data: object) -> bytes:
    """One server-sent event frame."""
    return f"event: {event}\ndata: {dumps(data)}\n\n".encode()


Feed = Callable[[int, set[str]], tuple[int, list[dict[str, Any]]]]


async def _events(
    poller: VersionPoller, names: list[str], ping: float, feed: Feed | None = None
) -> AsyncIterator[bytes]:
    poller.subscribe(names)
    seq = feed(0, set())[0] if feed is not None else 0
    try:
        give_up = time.monotonic() + ping
        while not poller.knows(names) and time.monotonic() < give_up:
            await poller.wait_tick(give_up - time.monotonic())
        last = {name: poller.versions.get(name) for name in names}
        yield b"retry: 2000\n: connected\n\n"
        next_ping = time.monotonic() + ping
        while True:
            await poller.wait_tick(max(0.0, next_ping - time.monotonic()))
            for name in names:
                version = poller.versions.get(name)
                before = last.get(name)
                if version is not None and (before is None or version > before):
                    yield sse("update", {"run": name, "version": version})
                if version is not None:
                    last[name] = version
            if feed is not None:
                seq, items = feed(seq, set(names))
                for item in items:
                    yield sse("projection", item)
            if time.monotonic() >= next_ping:
                next_ping = time.monotonic() + ping
                yield b": ping\n\n"
    finally:
        poller.unsubscribe(names)


def _check(state: AppState, names: list[str]) -> None:
    for name in names:  # unknown run -> 404 up front; an unreadable one just never updates
        state.check_listed(name)


async def stream(request: Request) -> Response:
    """``text/event-stream`` of ``update`` events for the ``run`` parameters.

    Async: it only checks that the runs exist (files, no SQL) and then waits on the shared
    poller, so open streams hold no worker thread and no read slot of their runs.
    """
    names = params.texts(request, "run")[:MAX_STREAM_RUNS]
    state = app_state(request)
    await anyio.to_thread.run_sync(_check, state, names)
    return StreamingResponse(
        _events(
            state.poller(),
            names,
            state.settings.ping_interval,
            functools.partial(projection_events, request.app),
        ),  # fmt: skip
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


routes = [Route("/api/stream", stream, methods=["GET"])]
