"""Run the dashboard with uvicorn: in the foreground (the CLI) or in a thread (tests, demo).

`bind(host, port)` opens the listening socket first, so a taken port is a clear
`PortInUseError` instead of uvicorn's log line and `sys.exit`.

Example:
    >>> url, stop = serve_in_thread(Settings(logdir=Path("runs")))  # doctest: +SKIP
    >>> stop()  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import threading
import time
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette

from deepscope.errors import DeepscopeError
from deepscope.server.app import create_app
from deepscope.server.protocol import protocol_class
from deepscope.server.settings import Settings

__all__ = [
    "PortInUseError",
    "RunningServer",
    "bind",
    "make_server",
    "serve_in_thread",
    "start_in_thread",
    "url_for",
]

SHUTDOWN_GRACE_S = 2
MAX_HEAD_BYTES = 32 * 1024  # request line + headers; the query string alone is capped at 8 KiB


class PortInUseError(DeepscopeError):
    """The port is taken by another program."""


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (port 0 picks a free one)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUseError(
                f"port {port} on {host} is already in use: pass another --port "
                "(or stop the program using it)"
            ) from exc
        raise DeepscopeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def url_for(host: str, port: int) -> str:
    """The URL a browser uses for a server bound to `host`:`port`."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    if shown == "::":
        shown = "::1"
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def make_server(settings: Settings, app: Starlette | None = None) -> uvicorn.Server:
    """A uvicorn server for `create_app(settings)` (quiet logs, short shutdown grace).

    Connections are bounded (docs/threats.md D8): a request head must arrive within
    `Settings.header_timeout` seconds (`deepscope.server.protocol`), an idle keep-alive
    connection closes after `Settings.keep_alive` seconds, a request head larger than
    `MAX_HEAD_BYTES` is a 400, and past `Settings.max_connections` uvicorn answers 503.
    """
    config = uvicorn.Config(
        create_app(settings) if app is None else app,
        http=protocol_class(settings.header_timeout),
        log_level="warning",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        timeout_keep_alive=max(1, round(settings.keep_alive)),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        limit_concurrency=settings.max_connections,
        server_header=False,
        proxy_headers=False,
        lifespan="off",
    )
    return uvicorn.Server(config)


@dataclasses.dataclass(frozen=True)
class RunningServer:
    """A server started by `start_in_thread`: its URL, its app (tests read its state) and
    `stop()`, which joins the thread."""

    url: str
    app: Starlette
    stop: Callable[[], None]


def start_in_thread(
    settings: Settings, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 10.0
) -> RunningServer:
    """Start a real server in a daemon thread and wait until it listens."""
    sock = bind(host, port)
    actual_port = sock.getsockname()[1]
    settings = dataclasses.replace(settings, bound_host=host)
    app = create_app(settings)
    server = make_server(settings, app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="deepscope-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise DeepscopeError("the dashboard server did not start; see the log above")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=SHUTDOWN_GRACE_S + 5)
        sock.close()

    return RunningServer(url_for(host, actual_port), app, stop)


def serve_in_thread(
    settings: Settings, host: str = "127.0.0.1", port: int = 0, *, timeout: float = 10.0
) -> tuple[str, Callable[[], None]]:
    """Start a real server in a daemon thread; return its URL and a `stop()` that joins it."""
    running = start_in_thread(settings, host, port, timeout=timeout)
    return running.url, running.stop
