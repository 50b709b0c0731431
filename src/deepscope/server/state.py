"""Per-app state shared by the routes: settings, the store (opened lazily), the graph cache,
the read gate (bounded reads per run), the cached run list and the shared SSE poller.

The store is typed by the store contract (`deepscope.store.protocol.Store`), so any
backend (a SQLite log directory, a PostgreSQL URL) is served the same way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from starlette.requests import Request

from deepscope.errors import NotFoundError, StoreError
from deepscope.server.gate import ReadGate
from deepscope.server.graph_cache import GraphCache
from deepscope.server.listing import RunListing, Stamp, StoreListing, confined_db
from deepscope.server.params import BadRequestError
from deepscope.server.poller import VersionPoller
from deepscope.server.settings import Settings
from deepscope.store.protocol import RunReader, Store
from deepscope.store.schema import DB_NAME, is_valid_run_name

__all__ = ["AppState", "ServedRun", "ServedStore", "app_state", "safe_run_name"]

MAX_RUN_NAME = 255


ServedRun = RunReader  # the server reads runs through the store contract only
ServedStore = Store


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
        self.gate = ReadGate(
            per_run=settings.reads_per_run,
            wait=settings.read_wait,
            deadline=settings.request_deadline,
            threads=settings.read_threads,
        )
        self._store: ServedStore | None = None
        self._listing: RunListing | StoreListing | None = None
        self._poller: VersionPoller | None = None
        self._lock = threading.Lock()

    def store(self) -> ServedStore:
        """The store over `settings.logdir`; 404 when the server shows a model only."""
        if self.settings.logdir is None:
            raise NotFoundError("this server shows one model, not a log directory")
        with self._lock:
            if self._store is None:
                import deepscope.store

                self._store = deepscope.store.open(
                    self.settings.store_url or self.settings.logdir,
                    read_deadline=self.settings.read_deadline,
                )
            return self._store

    @property
    def database(self) -> bool:
        """Whether the runs come from a database store (not files in a log directory)."""
        return self.settings.store_url is not None

    def run(self, name: str) -> ServedRun:
        """The reader of run `name` (`NotFoundError` for an unknown or path-like name, or
        one whose run.db resolves outside the log folder)."""
        store = self.store()
        assert self.settings.logdir is not None
        if not self.database:
            confined_db(self.settings.logdir.resolve(), safe_run_name(name))
        return store.run(safe_run_name(name))

    def check_listed(self, name: str) -> None:
        """`NotFoundError` unless `name` is a run listed here (files only, nothing opened).

        An unreadable run passes (it is listed, as ``"unreadable"``): a live stream that
        follows it next to good runs must not fail; the poller reads only confined files.
        """
        store = self.store()
        assert self.settings.logdir is not None
        if self.database:
            store.run(safe_run_name(name))  # NotFoundError for a run the database lacks
            return
        if not is_valid_run_name(safe_run_name(name)) or not os.path.lexists(
            os.path.join(self.settings.logdir, name, DB_NAME)
        ):
            raise NotFoundError(f"no run named {name[:80]!r}")

    def listing(self) -> RunListing | StoreListing:
        """The cached run list of the log folder (or the database store's listing)."""
        store = self.store()
        assert self.settings.logdir is not None
        with self._lock:
            if self._listing is None and self.database:
                self._listing = StoreListing(store, self.gate)
            if self._listing is None:
                self._listing = RunListing(
                    self.settings.logdir, self.gate, lambda name: store.run(name).info()
                )
            return self._listing

    def poller(self) -> VersionPoller:
        """The one version poller every ``/api/stream`` connection shares."""
        store = self.store()
        assert self.settings.logdir is not None
        with self._lock:
            if self._poller is None:
                self._poller = VersionPoller(
                    self.settings.logdir,
                    self.gate,
                    lambda name: store.run(name).version(),
                    interval=self.settings.poll_interval,
                    stamps=_version_stamps(store) if self.database else None,
                )
            return self._poller

    def model_mode(self) -> bool:
        return self.settings.model_graph is not None


def _version_stamps(store: Store) -> Callable[[list[str]], dict[str, Stamp | None]]:
    """What the poller compares for a database store: each run's version, all in one query
    (a run whose version moved is then read again)."""

    def stamps(runs: list[str]) -> dict[str, Stamp | None]:
        try:
            versions = store.versions(runs)
        except StoreError:
            return dict.fromkeys(runs)
        return {run: None if v is None else (v,) for run, v in versions.items()}

    return stamps


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
