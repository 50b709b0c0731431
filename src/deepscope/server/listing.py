"""`RunListing`: the run list behind ``/api/runs``, cached between changes (threats S10, D8
in docs/threats.md).

- Run names are scanned once per change of the log folder (its mtime), plus a cheap re-check
  of folders that had no ``run.db`` yet (a run being created).
- Each run's `RunInfo` is read once per change of its ``run.db`` / ``run.db-wal`` (size,
  mtime, inode), and again after `RUNNING_TTL_S` while it reads "running" (so a run that
  went silent turns "interrupted" without a write). Concurrent requests for the same run
  share one read (single flight); reads go through the `ReadGate` (bounded, with a deadline).
- A run that cannot be read (not a database, truncated, wrong types, a hostile query that
  runs past the deadline, a ``run.db`` that resolves outside the log folder) is listed with
  status ``"unreadable"`` and the reason; every other run is still served.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from deepscope.errors import DeepscopeError, NotFoundError
from deepscope.server.gate import ReadGate
from deepscope.store.protocol import RunInfo, Store
from deepscope.store.schema import DB_NAME, is_valid_run_name

__all__ = [
    "Listed",
    "OutsideLogdirError",
    "RunListing",
    "StoreListing",
    "confined_db",
    "db_stamp",
    "group_of",
]

RUNNING_TTL_S = 5.0  # a "running" entry is re-read after this long (the writer beats every 5 s)
RETRY_SLOW_S = 60.0  # a run that answered 503 (busy, past the deadline) is tried again after this
PAGE_READS = 8  # info reads of one page in flight at once
MAX_REASON = 300

Stamp = tuple[int, ...]


class OutsideLogdirError(NotFoundError):
    """A run's ``run.db`` cannot be served: it resolves outside the log folder (a link), or it
    is not a regular file (a FIFO, a directory...)."""


def confined_db(root: Path, name: str) -> Path:
    """The resolved ``run.db`` of run `name` under the resolved `root`.

    `NotFoundError` when it does not exist; `OutsideLogdirError` when the run folder or the
    database is a symbolic link leading out of the log folder (docs/threats.md S10, like blobs).
    """
    try:  # os.path.realpath: the same as Path.resolve, at half the cost (every request)
        target = Path(os.path.realpath(os.path.join(root, name, DB_NAME), strict=True))
    except (OSError, RuntimeError) as exc:
        raise NotFoundError(f"no run named {name[:80]!r}") from exc
    if not target.is_relative_to(root):
        raise OutsideLogdirError(
            f"run {name[:80]!r}: its run.db resolves outside the log folder (a symbolic link); "
            "it is not served. Copy the run into the log folder instead"
        )
    kind = _file_kind(target)  # os.stat only: a FIFO is never opened (it would block)
    if kind != "regular file":
        raise OutsideLogdirError(
            f"run {name[:80]!r}: its run.db is not a regular file (a {kind}); it is not "
            "served. Replace it with the run's database file"
        )
    return target


def _file_kind(path: Path) -> str:
    """What `path` is, from ``os.stat`` (never opens it): ``"regular file"``, ``"FIFO"``..."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "missing file"
    kinds = ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"),
             (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
             (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))  # fmt: skip
    return next((label for test, label in kinds if test(mode)), "special file")


def db_stamp(db: Path) -> Stamp:
    """What changes when a run is written: size, mtime and inode of the db and its WAL."""
    st = os.stat(db)
    tail: Stamp = (0, 0)  # no WAL and an empty one read the same (a reader may create it)
    try:
        wal = os.stat(str(db) + "-wal")
        if wal.st_size:
            tail = (wal.st_size, wal.st_mtime_ns)
    except OSError:
        pass
    return (st.st_size, st.st_mtime_ns, st.st_ino, *tail)


@dataclass(frozen=True)
class Listed:
    """One row of the run list: its `info`, or the `error` that makes it unreadable."""

    name: str
    info: RunInfo | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The wire form (``status: "unreadable"`` plus ``error`` for a bad run)."""
        if self.info is None:
            return {"name": self.name, "status": "unreadable", "error": self.error,
                    "created": 0.0, "heartbeat": 0.0, "finished": None, "config": {}}  # fmt: skip
        i = self.info
        out = {"name": i.name, "status": i.status, "created": i.created,
               "heartbeat": i.heartbeat, "finished": i.finished, "config": i.config}  # fmt: skip
        if i.error is not None or i.status == "unreadable":  # the store may flag it itself
            out["error"] = i.error or "run.db cannot be read"
        place = group_of(i.config)
        if place is not None:
            out["group"], out["rank"] = place
        return out


GROUP_KEY = "deepscope"  # the config key `deepscope.init(group=...)` writes (tracking/_group.py)


def group_of(config: Any) -> tuple[str, int] | None:
    """(group, rank) of a rank's run of a distributed job, from its config's ``"deepscope"``
    key; None for other runs (and for a key written by hand with other types)."""
    place = config.get(GROUP_KEY) if isinstance(config, dict) else None
    if not isinstance(place, dict):
        return None
    group, rank = place.get("group"), place.get("rank")
    if not isinstance(group, str) or not group or type(rank) is not int or rank < 0:
        return None
    return group[:128], rank


def reason(exc: BaseException) -> str:
    """A short, client-safe reason for an unreadable run."""
    if isinstance(exc, DeepscopeError):
        text = str(exc)
    elif isinstance(exc, sqlite3.Error):
        text = f"run.db cannot be read by SQLite: {exc}"
    else:
        text = f"run.db holds values of the wrong type: {type(exc).__name__}: {exc}"
    return text[:MAX_REASON]


@dataclass
class _Entry:
    stamp: Stamp
    row: Listed | None  # None: not initialised yet (skipped, as before)
    at: float
    ttl: float | None = None  # seconds it stays valid without a change (None: until one)


class RunListing:
    """The cached run list of one log folder. Call `page` from the event loop."""

    def __init__(
        self,
        root: Path,
        gate: ReadGate,
        read_info: Callable[[str], RunInfo],
        *,
        ttl: float = RUNNING_TTL_S,
    ) -> None:
        self.root = root.resolve()
        self.gate = gate
        self.read_info = read_info
        self.ttl = ttl
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()  # one folder scan at a time
        self._names: list[str] = []
        self._pending: list[str] = []  # run-named folders without a run.db yet
        self._root_mtime = -1
        self._entries: dict[str, _Entry] = {}
        self._flights: dict[str, anyio.Event] = {}
        self.scans = 0  # folder scans (tests and the benchmark read these counters)
        self.computed = 0  # RunInfo reads

    # -- names ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Sorted run names (folders with a run.db), rescanned only when the folder changes.

        Single-flight: concurrent first requests wait for one scan instead of each scanning.
        """
        with self._scan_lock:
            return self._names_locked()

    def _names_locked(self) -> list[str]:
        try:
            mtime = os.stat(self.root).st_mtime_ns
        except OSError as exc:
            raise NotFoundError(f"log folder {self.root} is gone") from exc
        with self._lock:
            fresh = mtime == self._root_mtime and not any(
                os.path.lexists(os.path.join(self.root, p, DB_NAME)) for p in self._pending
            )
            if fresh:
                return self._names
        names, pending = self._scan()
        with self._lock:
            self._names, self._pending, self._root_mtime = names, pending, mtime
            for gone in set(self._entries) - set(names):
                del self._entries[gone]
            self.scans += 1
        return names

    def _scan(self) -> tuple[list[str], list[str]]:
        names: list[str] = []
        pending: list[str] = []
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise NotFoundError(f"cannot list {self.root}: {exc.strerror}") from exc
        for e in entries:
            if not is_valid_run_name(e.name):
                continue
            if os.path.lexists(os.path.join(e.path, DB_NAME)):
                names.append(e.name)
            elif e.is_dir():
                pending.append(e.name)
        names.sort()
        return names, pending

    # -- rows ----------------------------------------------------------------------------

    def _cached(self, name: str, stamp: Stamp) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(name)
        if entry is None or entry.stamp != stamp:
            return None
        if entry.ttl is not None and time.monotonic() - entry.at > entry.ttl:
            return None
        return entry

    def _stamps(self, names: list[str]) -> dict[str, Stamp | Listed | None]:
        out: dict[str, Stamp | Listed | None] = {}
        for name in names:
            try:
                out[name] = db_stamp(confined_db(self.root, name))
            except OutsideLogdirError as exc:
                out[name] = Listed(name, None, reason(exc))
            except (OSError, NotFoundError):
                out[name] = None  # deleted meanwhile
        return out

    async def _row(self, name: str, stamp: Stamp) -> Listed | None:
        while True:
            entry = self._cached(name, stamp)
            if entry is not None:
                return entry.row
            flight = self._flights.get(name)
            if flight is None:
                break
            await flight.wait()  # someone is reading it: share the result
        flight = self._flights[name] = anyio.Event()
        try:
            row: Listed | None
            ttl: float | None = None
            try:
                info = await self.gate.call([name], self.read_info, name)
                row = Listed(name, info)
                ttl = self.ttl if info.status == "running" else None
            except NotFoundError:
                row = None  # deleted, or created but not initialised yet
            except Exception as exc:  # noqa: BLE001 - any failure makes this one run unreadable
                row = Listed(name, None, reason(exc))
                if isinstance(exc, DeepscopeError) and exc.http_status == 503:
                    ttl = RETRY_SLOW_S  # too slow or busy now: maybe not later
            with self._lock:
                self.computed += 1
                self._entries[name] = _Entry(stamp, row, time.monotonic(), ttl)
            return row
        finally:
            del self._flights[name]
            flight.set()

    async def page(self, *, offset: int, limit: int, filter: str = "") -> tuple[list[Listed], int]:
        """Rows ``[offset, offset + limit)`` of the runs whose name contains `filter`, and the
        total. Rows of runs deleted meanwhile are left out."""
        names = await anyio.to_thread.run_sync(self.names)
        if filter:
            needle = filter.lower()
            names = [n for n in names if needle in n.lower()]
        chosen = names[offset : offset + limit]
        stamps = await anyio.to_thread.run_sync(self._stamps, chosen)
        rows: dict[str, Listed | None] = {}
        slots = anyio.Semaphore(PAGE_READS)

        async def one(name: str, stamp: Stamp) -> None:
            async with slots:
                rows[name] = await self._row(name, stamp)

        async with anyio.create_task_group() as tg:
            for name, got in stamps.items():
                if not isinstance(got, tuple):
                    rows[name] = got
                elif (entry := self._cached(name, got)) is not None:
                    rows[name] = entry.row
                else:
                    tg.start_soon(one, name, got)
        out = [row for name in chosen if (row := rows.get(name)) is not None]
        return out, len(names)


class StoreListing:
    """The run list of a database store (`deepscope.store.protocol.Store`): one query per
    page (the store lists runs with their status itself), through the `ReadGate`."""

    def __init__(self, store: Store, gate: ReadGate) -> None:
        self.store = store
        self.gate = gate

    def _page(self, offset: int, limit: int, filter: str) -> tuple[list[Listed], int]:
        infos = self.store.runs(offset=offset, limit=limit, filter=filter)
        total = self.store.count_runs(filter=filter)
        return [Listed(i.name, i) for i in infos], total

    async def page(self, *, offset: int, limit: int, filter: str = "") -> tuple[list[Listed], int]:
        """Rows ``[offset, offset + limit)`` of the runs whose name contains `filter`, and the
        total."""
        return await self.gate.call([], self._page, offset, limit, filter)
