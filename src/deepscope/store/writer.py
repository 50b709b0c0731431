"""The run writer: a bounded in-memory queue and one background thread that commits batches.

Training threads only append to a deque (``put``); the writer thread commits everything it
finds in ONE ``BEGIN IMMEDIATE … COMMIT`` every ``flush_interval`` seconds, or sooner when
``batch_items`` items are waiting. ``flush()`` blocks until everything put before it is
committed. Durability (README, THREATS.md section b):

* after kill -9 / OOM / segfault: everything before the last returned ``flush()`` is there,
  at most one flush interval is lost, batches are all-or-nothing, no repair is needed;
* after an OS crash or power loss: consistent; with ``durability="normal"`` the last
  batches may roll back; ``durability="full"`` makes every returned ``flush()`` survive
  (if the disk honours fsync).

A store fault (disk full, read-only, run directory deleted or replaced) never reaches the
training loop unless ``strict=True``: the batch goes to a spill file (JSON lines next to the
run), ``dropped`` counts it, one warning is shown, and logging resumes when the fault goes.

Fork: SQLite connections never cross ``fork()``. A forked child (DataLoader worker) gets a
fresh queue, thread and connection of its own, writing into the same run database as a
session whose ``parent`` is the parent's session; it flushes when the child exits.
"""

from __future__ import annotations

import atexit
import base64
import collections
import logging
import math
import os
import socket
import sqlite3
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepscope.errors import StoreError
from deepscope.store import jsonenc
from deepscope.store.blobs import write_blob
from deepscope.store.schema import (
    DB_NAME,
    KIND_FINITE,
    KIND_NAN,
    KIND_NEGINF,
    KIND_NEGZERO,
    KIND_POSINF,
    connect_writer,
    immediate,
)

log = logging.getLogger("deepscope.store")


class StoreWarning(UserWarning):
    """The run store is degraded: points go to a spill file instead of the database."""


@dataclass(frozen=True)
class WriterOptions:
    durability: str = "normal"  # "normal" (synchronous=NORMAL) or "full" (synchronous=FULL)
    strict: bool = False  # raise StoreError in the caller instead of degrading
    flush_interval: float = 1.0
    batch_items: int = 5_000  # wake the writer early when this many items wait
    max_queue: int = 100_000  # then log() blocks (back-pressure) ...
    max_queue_bytes: int = 256 * 1024 * 1024  # ... or when queued blob bytes exceed this
    queue_timeout: float = 30.0  # ... for at most this long, then drops (counted)
    heartbeat_interval: float = 5.0
    checkpoint_bytes: int = 8 * 1024 * 1024  # TRUNCATE-checkpoint when the WAL grows past it

    def __post_init__(self) -> None:
        if self.durability not in ("normal", "full"):
            raise ValueError(f"durability must be 'normal' or 'full', not {self.durability!r}")
        if not (self.flush_interval > 0 and math.isfinite(self.flush_interval)):
            raise ValueError(
                f"flush_interval must be a positive number of seconds, not {self.flush_interval!r}"
            )


class DeviceValue:
    """A 1-element tensor on an accelerator, read in the writer thread (no sync in training)."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor

    def get(self) -> float:
        return read_device_values([self])[0]


def read_device_values(values: list[DeviceValue]) -> list[float]:
    """Read many device scalars with one synchronisation and one copy per (device, dtype).

    The device is synchronised as a whole, so a value queued on any stream is complete.
    """
    import torch

    out: list[float] = [math.nan] * len(values)
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, v in enumerate(values):
        groups.setdefault((v.tensor.device, v.tensor.dtype), []).append(i)
    synced = set()
    for (device, _dtype), idx in groups.items():
        if device.type == "cuda" and device not in synced:
            torch.cuda.synchronize(device)
            synced.add(device)
        flat = torch.cat([values[i].tensor.reshape(1) for i in idx])
        if flat.dtype not in (torch.float32, torch.float64):
            flat = flat.to(torch.float64)
        for i, x in zip(idx, flat.cpu().tolist(), strict=True):
            out[i] = float(x)
    return out


class _Marker:
    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


# Items in the queue (tuples, cheap to build in the training thread):
#   ("s", step, wall, ((tag, value), ...))        value: float
#   ("d", step, wall, [(tag, value), ...])        value: float or DeviceValue
#   ("h", tag, step, wall, histogram)             histogram: HistogramData-like
#   ("b", kind, tag, step, wall, relpath, data, meta)
#   ("e", step, wall, severity, kind, layer, message)
#   _Marker                                        flush()
Item = Any

FaultHook = Callable[[str], None]


def classify(v: float) -> tuple[float | None, int]:
    """(value column, kind column) for a float: SQLite keeps neither NaN nor -0.0."""
    if v != v:
        return None, KIND_NAN
    if v == math.inf:
        return None, KIND_POSINF
    if v == -math.inf:
        return None, KIND_NEGINF
    if v == 0.0 and math.copysign(1.0, v) < 0:
        return 0.0, KIND_NEGZERO
    return v, KIND_FINITE


class RunWriter:
    """Writes one run (``run_dir/run.db``) from a background thread. See the module doc."""

    def __init__(
        self,
        run_dir: Path,
        name: str,
        *,
        config_json: str = "{}",
        options: WriterOptions | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.name = name
        self.db_path = run_dir / DB_NAME
        self.options = options or WriterOptions()
        self._batch_items = self.options.batch_items
        self._config_json = config_json
        self.fault_hook: FaultHook | None = None  # tests: called before each write step
        self.dropped = 0
        self.spill_path: Path | None = None
        self._session_id: int | None = None
        self._parent_session: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._db_ident: tuple[int, int] | None = None
        self._tag_ids: dict[tuple[str, str], int] = {}
        self._degraded = False
        self._pending: list[tuple[str, BaseException | None]] = []  # shown in the caller
        self._closed = False
        self._last_heartbeat = 0.0
        self._reset_runtime()
        _register(self)
        self._open_or_degrade(first=True)
        self._start()

    # ---- state that must be fresh in every process --------------------------------------
    def _reset_runtime(self) -> None:
        self._pid = os.getpid()
        self._q: collections.deque[Item] = collections.deque()
        self._queued_bytes = 0
        self._wake = threading.Event()
        self._drained = threading.Event()
        self._io_lock = threading.Lock()
        self._stop = False
        self._thread: threading.Thread | None = None

    def _after_fork_child(self) -> None:
        if self._conn is not None:
            _FORK_ORPHANS.append(self._conn)  # never closed here: it belongs to the parent
        self._conn = None
        self._db_ident = None
        self._parent_session = self._session_id
        self._session_id = None
        self._tag_ids = {}
        self._pending = []
        self._reset_runtime()
        if self._closed:
            return
        # The child starts its writer lazily, on its first put().

    # ---- caller-thread API --------------------------------------------------------------
    def put(self, item: Item, nbytes: int = 0) -> None:
        """Enqueue one item (never blocks unless the queue is full)."""
        if self._thread is None:
            self._start_in_child()
        q = self._q
        q.append(item)
        if nbytes or len(q) >= self._batch_items:
            self._on_full(nbytes)

    def _on_full(self, nbytes: int) -> None:
        self._queued_bytes += nbytes
        if not self._wake.is_set():
            self._wake.set()
        if (
            len(self._q) >= self.options.max_queue
            or self._queued_bytes > self.options.max_queue_bytes
        ):
            self._backpressure()

    def check(self) -> None:
        """Show a pending warning once, or raise in strict mode (called from the caller)."""
        pending, self._pending = self._pending, []
        for message, error in pending:
            if self.options.strict:
                raise StoreError(message) from error
            warnings.warn(message, StoreWarning, stacklevel=4)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything put before this call is committed (or spilled)."""
        if self._thread is None or self._closed:
            self.check()
            return
        marker = _Marker()
        self._q.append(marker)
        self._wake.set()
        if not marker.done.wait(timeout):
            self._note(f"deepscope: flush of run '{self.name}' timed out after {timeout} s", None)
        self.check()

    def close(self, state: str = "finished", timeout: float = 30.0) -> None:
        """Flush, mark this process's session ended (`state`) and stop the thread."""
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._end_state = state
            self._stop = True
            self._wake.set()
            thread.join(timeout)
        _unregister(self)

    # ---- thread -------------------------------------------------------------------------
    def _start(self) -> None:
        self._end_state = "finished"
        self._thread = threading.Thread(
            target=self._run, name=f"deepscope-writer-{self.name}", daemon=True
        )
        self._thread.start()

    def _start_in_child(self) -> None:
        if self._closed:
            raise StoreError(f"run '{self.name}' is finished; call deepscope.init() for a new run")
        # A forked child: its own connection and session, flushed at the child's exit.
        self._open_or_degrade(first=False)
        self._start()
        try:
            from multiprocessing import util

            util.Finalize(None, _close_ref, args=(weakref.ref(self),), exitpriority=100)
        except Exception:  # pragma: no cover - multiprocessing always importable
            pass

    def _run(self) -> None:
        interval = self.options.flush_interval
        next_flush = time.monotonic() + interval
        beat = self.options.heartbeat_interval
        while True:
            next_beat = self._last_heartbeat + beat - time.time()
            timeout = max(0.0, min(next_flush - time.monotonic(), next_beat))
            self._wake.wait(timeout)
            self._wake.clear()
            stopping = self._stop
            try:
                self._drain()
                now = time.monotonic()
                if now >= next_flush:
                    next_flush = now + interval
                if time.time() - self._last_heartbeat >= beat:
                    self._write_heartbeat()
            except BaseException as exc:  # never let the thread die
                log.exception("deepscope writer thread error: %s", exc)
            if stopping and not self._q:
                break
        self._end_session(self._end_state)

    def _drain(self) -> None:
        q = self._q
        while q:
            items: list[Item] = []
            markers: list[_Marker] = []
            for _ in range(min(len(q), 50_000)):
                it = q.popleft()
                if type(it) is _Marker:
                    markers.append(it)
                else:
                    items.append(it)
                    if it[0] == "b":
                        self._queued_bytes -= len(it[6]) or 1
            error = self._commit(items) if items else None
            self._drained.set()
            for m in markers:
                m.error = error
                m.done.set()
            self._maybe_checkpoint()

    def _backpressure(self) -> None:
        deadline = time.monotonic() + self.options.queue_timeout
        while (
            len(self._q) >= self.options.max_queue
            or self._queued_bytes > self.options.max_queue_bytes
        ):
            thread = self._thread
            if thread is None or not thread.is_alive() or time.monotonic() > deadline:
                dropped = self._q.pop()
                self.dropped += _count(dropped)
                self._note(
                    f"deepscope: the writer of run '{self.name}' cannot keep up; dropping points "
                    f"(dropped so far: {self.dropped})",
                    None,
                    once_key="backpressure",
                )
                return
            self._drained.clear()
            self._wake.set()
            self._drained.wait(0.05)

    # ---- connection ---------------------------------------------------------------------
    def _open_or_degrade(self, *, first: bool) -> None:
        try:
            self._open()
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as exc:
            if self.options.strict and first:
                raise StoreError(self._fault_message(exc)) from exc
            self._enter_degraded(exc)

    def _open(self) -> None:
        self._fault("connect")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        conn = connect_writer(self.db_path, durability=self.options.durability)
        try:
            now = time.time()
            with immediate(conn):
                conn.execute(
                    "INSERT OR IGNORE INTO run (id, name, created, config, schema_version) "
                    "VALUES (1, ?, ?, ?, (SELECT MAX(version) FROM migration))",
                    (self.name, now, self._config_json),
                )
                if self._config_json != "{}":
                    conn.execute(
                        "UPDATE run SET config = ? WHERE id = 1 AND config = '{}'",
                        (self._config_json,),
                    )
                row = None
                if self._session_id is not None:
                    row = conn.execute(
                        "SELECT id FROM session WHERE id = ? AND pid = ?",
                        (self._session_id, os.getpid()),
                    ).fetchone()
                if row is None:
                    cur = conn.execute(
                        "INSERT INTO session (pid, host, parent, started, heartbeat) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (os.getpid(), socket.gethostname(), self._parent_session, now, now),
                    )
                    self._session_id = cur.lastrowid
                self._bump(conn)
        except BaseException:
            conn.close()
            raise
        st = os.stat(self.db_path)
        self._conn, self._db_ident = conn, (st.st_dev, st.st_ino)
        self._tag_ids = {}
        self._last_heartbeat = time.time()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def _check_identity(self) -> None:
        """Detect run.db deleted or replaced under us (writes would go to a ghost inode)."""
        try:
            st = os.stat(self.db_path)
            same = (st.st_dev, st.st_ino) == self._db_ident
        except OSError:
            same = False
        if not same:
            self._drop_connection()
            self._session_id = None
            self._open()  # raises while the directory cannot be recreated: spilled, degraded
            self._note(
                f"deepscope: {self.db_path} was deleted or replaced while run '{self.name}' "
                "was logging; what it held is gone. Logging continues into a new run.db.",
                None,
            )

    def _fault(self, op: str) -> None:
        hook = self.fault_hook
        if hook is not None:
            hook(op)

    # ---- commits ------------------------------------------------------------------------
    def _commit(self, items: list[Item]) -> BaseException | None:
        items = self._resolve_all(items)
        if not items:
            return None
        with self._io_lock:
            try:
                if self._conn is None:
                    self._open()
                else:
                    self._check_identity()
                self._write_blobs(items)
                self._fault("commit")
                assert self._conn is not None
                with immediate(self._conn) as conn:
                    self._insert(conn, items)
                    self._bump(conn)
                    conn.execute(
                        "UPDATE session SET heartbeat = ? WHERE id = ?",
                        (time.time(), self._session_id),
                    )
                self._last_heartbeat = time.time()
            except (sqlite3.Error, OSError, StoreError) as exc:
                self._spill(items, exc)
                return exc
            except Exception as exc:  # a bug or a bad item: still never lose silently
                log.exception("deepscope: unexpected error writing run '%s'", self.name)
                self._spill(items, exc)
                return exc
        if self._degraded:
            self._degraded = False
            log.warning("deepscope: run '%s' is writing to %s again", self.name, self.db_path)
        return None

    def _resolve_all(self, items: list[Item]) -> list[Item]:
        """Finish what the caller deferred (device reads, histograms), outside the I/O lock."""
        if not any(it[0] in "dh" for it in items):
            return items
        try:
            items = _read_device_items(items)
        except Exception as exc:  # a device that cannot be read: count those points
            self.dropped += sum(_count(it) for it in items if it[0] == "d")
            items = [it for it in items if it[0] != "d"]
            log.warning("deepscope: could not read tensors logged to run '%s': %s", self.name, exc)
        out = []
        for it in items:
            try:
                out.append(_resolve(it) if it[0] == "h" else it)
            except Exception as exc:  # a histogram that cannot be finished: count it
                self.dropped += _count(it)
                log.warning(
                    "deepscope: could not read a value logged to run '%s': %s", self.name, exc
                )
        return out

    def _write_blobs(self, items: list[Item]) -> None:
        full = self.options.durability == "full"
        for it in items:
            if it[0] == "b":
                self._fault("blob")
                write_blob(self.run_dir, it[5], it[6], fsync=full)

    def _tag_id(self, conn: sqlite3.Connection, name: str, kind: str) -> int:
        key = (name, kind)
        tid = self._tag_ids.get(key)
        if tid is None:
            conn.execute("INSERT OR IGNORE INTO tag (name, kind) VALUES (?, ?)", key)
            tid = conn.execute("SELECT id FROM tag WHERE name = ? AND kind = ?", key).fetchone()[0]
            self._tag_ids[key] = tid
        return int(tid)

    def _insert(self, conn: sqlite3.Connection, items: list[Item]) -> None:
        scalars: list[tuple[Any, ...]] = []
        hists: list[tuple[Any, ...]] = []
        blobs: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        ids = self._tag_ids
        inf = math.inf
        for it in items:
            code = it[0]
            if code == "s":
                _, step, wall, pairs = it
                for tag, v in pairs:
                    tid = ids.get((tag, "scalar")) or self._tag_id(conn, tag, "scalar")
                    if -inf < v < inf and v != 0.0:  # the common case, inline
                        scalars.append((tid, step, wall, v, KIND_FINITE))
                    else:
                        scalars.append((tid, step, wall, *classify(v)))
            elif code == "h":
                _, tag, step, wall, h = it
                tid = self._tag_id(conn, tag, "histogram")
                hists.append((tid, step, wall, *_histogram_row(h)))
            elif code == "b":
                _, kind, tag, step, wall, relpath, _data, meta = it
                tid = self._tag_id(conn, tag, kind)
                blobs.append((tid, kind, step, wall, relpath, meta))
            elif code == "e":
                events.append(it[1:])
        for table, rows, sql in (
            ("scalar", scalars, _INSERT_SCALAR),
            ("histogram", hists, _INSERT_HISTOGRAM),
            ("blob", blobs, _INSERT_BLOB),
        ):
            if rows:
                before = conn.execute(f"SELECT coalesce(MAX(id), 0) FROM {table}").fetchone()[0]
                conn.executemany(sql, rows)
                conn.execute(_TAG_STATS.format(table=table), (before,))
        if events:
            conn.executemany(_INSERT_EVENT, events)

    @staticmethod
    def _bump(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE counter SET version = version + 1 WHERE id = 1")

    def _write_heartbeat(self) -> None:
        with self._io_lock:
            self._last_heartbeat = time.time()  # an attempt counts: never spin while degraded
            if self._conn is None:
                return
            try:
                self._fault("heartbeat")
                with immediate(self._conn) as conn:
                    conn.execute(
                        "UPDATE session SET heartbeat = ? WHERE id = ?",
                        (time.time(), self._session_id),
                    )
                self._last_heartbeat = time.time()
            except (sqlite3.Error, OSError) as exc:
                log.debug("deepscope: heartbeat failed: %s", exc)

    def _maybe_checkpoint(self) -> None:
        """Bound the WAL even while readers keep snapshots open (THREATS.md S3)."""
        wal = self.db_path.with_name(DB_NAME + "-wal")
        try:
            if wal.stat().st_size <= self.options.checkpoint_bytes:
                return
        except OSError:
            return
        with self._io_lock:
            if self._conn is None:
                return
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.Error as exc:
                log.debug("deepscope: checkpoint failed: %s", exc)

    def _end_session(self, state: str) -> None:
        with self._io_lock:
            if self._conn is None:
                return
            try:
                now = time.time()
                with immediate(self._conn) as conn:
                    conn.execute(
                        "UPDATE session SET ended = ?, heartbeat = ?, state = ? WHERE id = ?",
                        (now, now, state, self._session_id),
                    )
                    self._bump(conn)
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    pass
            except (sqlite3.Error, OSError) as exc:
                log.warning("deepscope: could not mark run '%s' %s: %s", self.name, state, exc)
            finally:
                self._drop_connection()

    # ---- degraded mode ------------------------------------------------------------------
    def _fault_message(self, exc: BaseException) -> str:
        return (
            f"deepscope: cannot write run '{self.name}' to {self.db_path}: {exc}. "
            "Free disk space or fix the directory's permissions; until then points go to "
            f"{self.spill_path or 'a spill file'} and are counted in run.dropped."
        )

    def _enter_degraded(self, exc: BaseException) -> None:
        self._drop_connection()
        if not self._degraded:
            self._degraded = True
            self._spill_error_logged = False
            self._note(self._fault_message(exc), exc, once_key="fault")

    def _note(self, message: str, error: BaseException | None, once_key: str = "") -> None:
        """Log `message` now; show it once per run as a warning in the caller's thread (in
        strict mode: raise it there, every time)."""
        log.error("%s", message)
        if once_key and not self.options.strict:
            seen = self.__dict__.setdefault("_once", set())
            if once_key in seen:
                return
            seen.add(once_key)
        self._pending.append((message, error))

    def _spill(self, items: list[Item], exc: BaseException) -> None:
        n = sum(_count(it) for it in items)
        self.dropped += n
        self._drop_connection()
        if self.spill_path is None:
            self.spill_path = self.run_dir.parent / f"{self.name}.spill.jsonl"
        lines = "".join(_spill_lines(items))
        for path in (self.spill_path, _tmp_spill(self.name)):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
                try:
                    os.write(fd, lines.encode())
                finally:
                    os.close(fd)
                self.spill_path = path
                break
            except OSError:
                continue
        else:
            if not self.__dict__.get("_spill_error_logged"):
                self._spill_error_logged = True
                log.error("deepscope: cannot write a spill file either; points are lost")
        self._enter_degraded(exc)


def _resolve(item: Item) -> Item:
    if item[0] == "h" and hasattr(item[4], "result"):
        return ("h", item[1], item[2], item[3], item[4].result())
    return item


def _read_device_items(items: list[Item]) -> list[Item]:
    """Turn every "d" item (scalars with device tensors) into an "s" item, in one read."""
    pending = [v for it in items if it[0] == "d" for _, v in it[3] if type(v) is DeviceValue]
    if not pending:
        return items
    read = dict(zip(map(id, pending), read_device_values(pending), strict=True))
    out = []
    for it in items:
        if it[0] == "d":
            pairs = tuple((k, read[id(v)] if type(v) is DeviceValue else v) for k, v in it[3])
            out.append(("s", it[1], it[2], pairs))
        else:
            out.append(it)
    return out


def _tmp_spill(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"deepscope-{name}-{os.getpid()}.spill.jsonl"


def _count(item: Item) -> int:
    if type(item) is tuple and item and item[0] in "sd":
        return len(item[3])
    return 0 if type(item) is _Marker else 1


def _histogram_row(h: Any) -> tuple[Any, ...]:
    import numpy as np

    def opt(x: Any) -> float | None:
        if x is None:
            return None
        f = float(x)
        return f if f == f else None

    return (
        np.ascontiguousarray(h.edges, dtype="<f8").tobytes(),
        np.ascontiguousarray(h.counts, dtype="<i8").tobytes(),
        int(h.count),
        int(h.n_nan),
        int(h.n_posinf),
        int(h.n_neginf),
        opt(h.min),
        opt(h.max),
        opt(h.sum),
        opt(h.sum_sq),
    )


def _spill_lines(items: Iterable[Item]) -> Iterable[str]:
    for item in items:
        try:
            for rec in _spill_records([item]):
                yield jsonenc.dumps(rec) + "\n"
        except Exception as exc:  # an item that cannot be written as JSON: say so instead
            yield jsonenc.dumps({"type": "unreadable", "error": repr(exc)[:200]}) + "\n"


def _spill_records(items: Iterable[Item]) -> Iterable[dict[str, Any]]:
    for it in items:
        code = it[0]
        if code in "sd":
            for tag, v in it[3]:
                value = v.get() if type(v) is DeviceValue else v
                yield {
                    "type": "scalar",
                    "tag": tag,
                    "step": it[1],
                    "wallTime": it[2],
                    "value": value,
                }
        elif code == "h":
            h = it[4]
            yield {
                "type": "histogram", "tag": it[1], "step": it[2], "wallTime": it[3],
                "edges": h.edges, "counts": h.counts, "count": h.count, "nNan": h.n_nan,
                "nPosinf": h.n_posinf, "nNeginf": h.n_neginf, "min": h.min, "max": h.max,
                "sum": h.sum, "sumSq": h.sum_sq,
            }  # fmt: skip
        elif code == "b":
            yield {
                "type": "blob", "kind": it[1], "tag": it[2], "step": it[3], "wallTime": it[4],
                "path": it[5], "meta": jsonenc.loads(it[7]),
                "data": base64.b64encode(it[6]).decode("ascii"),
            }  # fmt: skip
        elif code == "e":
            yield {
                "type": "event", "step": it[1], "wallTime": it[2], "severity": it[3],
                "kind": it[4], "layer": it[5], "message": it[6],
            }  # fmt: skip


_INSERT_SCALAR = "INSERT INTO scalar (tag_id, step, wall_time, value, kind) VALUES (?, ?, ?, ?, ?)"
_INSERT_HISTOGRAM = (
    "INSERT INTO histogram (tag_id, step, wall_time, edges, counts, count, n_nan, n_posinf, "
    "n_neginf, min, max, sum, sum_sq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_BLOB = (
    "INSERT INTO blob (tag_id, kind, step, wall_time, path, meta) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT = (
    "INSERT INTO event (step, wall_time, severity, kind, layer, message) VALUES (?, ?, ?, ?, ?, ?)"
)
# per-tag count and step range, from the rows this batch just added (ids above the old max)
_TAG_STATS = (
    "UPDATE tag SET count = tag.count + s.n, first_step = min(coalesce(tag.first_step, s.lo), s.lo),"
    " last_step = max(coalesce(tag.last_step, s.hi), s.hi)"
    " FROM (SELECT tag_id, COUNT(*) AS n, MIN(step) AS lo, MAX(step) AS hi FROM {table}"
    " WHERE id > ? GROUP BY tag_id) AS s WHERE tag.id = s.tag_id"
)


# ---- process-wide bookkeeping: fork and exit ----------------------------------------------
_WRITERS: weakref.WeakSet[RunWriter] = weakref.WeakSet()
_FORK_ORPHANS: list[sqlite3.Connection] = []  # inherited connections, never touched again
_HOOKS_INSTALLED = False
_HOOKS_LOCK = threading.Lock()


def _register(w: RunWriter) -> None:
    global _HOOKS_INSTALLED
    _WRITERS.add(w)
    with _HOOKS_LOCK:
        if not _HOOKS_INSTALLED:
            _HOOKS_INSTALLED = True
            os.register_at_fork(
                before=_before_fork,
                after_in_parent=_after_fork_parent,
                after_in_child=_after_fork_child,
            )
            atexit.register(close_all)


def _unregister(w: RunWriter) -> None:
    _WRITERS.discard(w)


_HELD: list[threading.Lock] = []


def _before_fork() -> None:
    # Hold every writer's I/O lock so no SQLite call is in flight while the process forks.
    for w in list(_WRITERS):
        if w._thread is not None and w._pid == os.getpid():
            w._io_lock.acquire()
            _HELD.append(w._io_lock)


def _after_fork_parent() -> None:
    while _HELD:
        _HELD.pop().release()


def _after_fork_child() -> None:
    _HELD.clear()
    global _HOOKS_LOCK
    _HOOKS_LOCK = threading.Lock()
    for w in list(_WRITERS):
        w._after_fork_child()


def _close_ref(ref: weakref.ref[RunWriter]) -> None:
    w = ref()
    if w is not None:
        w.close()


_SIGNALS_INSTALLED = False


def install_signal_handlers() -> None:
    """On SIGTERM, flush and close every run (marked interrupted), then die as before.

    Installed once, from the main thread, and only where SIGTERM still has its default
    action (a framework's own handler is left alone). SIGINT needs nothing: its
    KeyboardInterrupt unwinds through ``with run:`` and atexit.
    """
    global _SIGNALS_INSTALLED
    if _SIGNALS_INSTALLED or threading.current_thread() is not threading.main_thread():
        return
    _SIGNALS_INSTALLED = True
    import signal

    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except (ValueError, OSError):  # pragma: no cover - not the main interpreter
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    import signal

    # Close from a helper thread: the interrupted main thread may hold a lock we need.
    t = threading.Thread(target=close_all, args=("interrupted",), daemon=True)
    t.start()
    t.join(20.0)
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def close_all(state: str = "finished") -> None:
    """Flush and close every open writer of this process (atexit, SIGTERM)."""
    for w in list(_WRITERS):
        try:
            w.close(state)
        except Exception as exc:  # pragma: no cover - best effort at exit
            log.warning("deepscope: closing run '%s' failed: %s", w.name, exc)
