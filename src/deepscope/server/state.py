"""Per-app state shared by the routes: settings, the store (opened lazily), the graph cache.

The store is typed by the read protocol (`deepscope.store.protocol`) plus the two lookups
the server needs beyond it (`count_runs`, `blob`), so any backend with those works.
"""

from __future__ import annotations

import threading
from typing import Protocol

from starlette.requests import Request

from deepscope.errors import NotFoundError
from deepscope.server.graph_cache import GraphCache
from deepscope.server.params import BadRequestError
from deepscope.server.settings import Settings
from deepscope.store.protocol import BlobInfo, RunInfo, RunReader

__all__ = ["AppState", "ServedRun", "ServedStore", "app_state", "safe_run_name"]

MAX_RUN_NAME = 255


class ServedRun(RunReader, Protocol):
    """A run reader that can also look a blob up by id and list only the latest blobs."""

    def blob(self, blob_id: int) -> BlobInfo: ...

    def blobs(
        self, kind: str, tag: str | None = None, *, limit: int | None = None
    ) -> list[BlobInfo]: ...


class ServedStore(Protocol):
    """The store operations the server calls."""

    def runs(self, *, offset: int = 0, limit: int = 500, filter: str = "") -> list[RunInfo]: ...

    def count_runs(self, *, filter: str = "") -> int: ...

    def run(self, name: str) -> ServedRun: ...


def safe_run_name(name: str) -> str:
    """Refuse run names that could mean a path (defence in depth: the store checks too)."""
    bad = (
        not name
        or len(name) > MAX_RUN_NAME
        or name in (".", "..")
        or any(c in name for c in "/\\\x00")
        or any(ord(c) < 0x20 for c in name)
    )
    if bad:
        raise NotFoundError(f"no run named {name[:80]!r}")
    return name


class AppState:
    """What the routes of one app share. Thread-safe (sync routes run in a thread pool)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.graphs = GraphCache(settings.graph_cache_size)
        self._store: ServedStore | None = None
        self._lock = threading.Lock()

    def store(self) -> ServedStore:
        """The store over `settings.logdir`; 404 when the server shows a model only."""
        if self.settings.logdir is None:
            raise NotFoundError("this server shows one model, not a log directory")
        with self._lock:
            if self._store is None:
                import deepscope.store

                self._store = deepscope.store.open(self.settings.logdir)
            return self._store

    def run(self, name: str) -> ServedRun:
        """The reader of run `name` (`NotFoundError` for an unknown or path-like name)."""
        return self.store().run(safe_run_name(name))

    def model_mode(self) -> bool:
        return self.settings.model_graph is not None


def app_state(request: Request) -> AppState:
    """The `AppState` of the app serving `request`."""
    state: AppState = request.app.state.deepscope
    return state


def require_model(request: Request) -> AppState:
    """The state, checking that the server was started with a model (``model=1``)."""
    state = app_state(request)
    if state.settings.model_graph is None:
        raise BadRequestError("model=1 needs `deepscope view MODEL`; pass run=... instead")
    return state
