"""``/api/stream``: server-sent events for live runs.

Each run's store `version()` is polled every `Settings.poll_interval` seconds in a worker
thread (one cheap query); when it grows, ``event: update`` carries ``{"run", "version"}``.
A ``: ping`` comment goes out every `Settings.ping_interval` seconds so proxies keep the
connection open. Starlette ends the generator when the client disconnects.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from deepscope.errors import DeepscopeError
from deepscope.server import params
from deepscope.server.state import ServedRun, app_state
from deepscope.store.jsonenc import dumps

MAX_STREAM_RUNS = 100


def _versions(readers: dict[str, ServedRun]) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    for name, reader in readers.items():
        try:
            out[name] = reader.version()
        except DeepscopeError:  # deleted or being created: report when it comes back
            out[name] = None
    return out


def sse(event: str, data: object) -> bytes:
    """One server-sent event frame."""
    return f"event: {event}\ndata: {dumps(data)}\n\n".encode()


async def _events(readers: dict[str, ServedRun], poll: float, ping: float) -> AsyncIterator[bytes]:
    last = await anyio.to_thread.run_sync(_versions, readers)
    yield b"retry: 2000\n: connected\n\n"
    next_ping = time.monotonic() + ping
    while True:
        await anyio.sleep(poll)
        now = await anyio.to_thread.run_sync(_versions, readers)
        for name, version in now.items():
            before = last.get(name)
            if version is not None and (before is None or version > before):
                yield sse("update", {"run": name, "version": version})
            if version is not None:
                last[name] = version
        if time.monotonic() >= next_ping:
            next_ping = time.monotonic() + ping
            yield b": ping\n\n"


def stream(request: Request) -> Response:
    """``text/event-stream`` of ``update`` events for the ``run`` parameters."""
    names = params.texts(request, "run")[:MAX_STREAM_RUNS]
    state = app_state(request)
    readers = {name: state.run(name) for name in names}  # unknown run -> 404 up front
    settings = state.settings
    return StreamingResponse(
        _events(readers, settings.poll_interval, settings.ping_interval),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


routes = [Route("/api/stream", stream, methods=["GET"])]
