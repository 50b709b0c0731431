"""The run writer: a bounded in-memory queue and one background thread that commits batches.

Training threads only append to a deque (``put``); the writer thread commits everything it
finds in ONE ``BEGIN IMMEDIATE … COMMIT`` every ``flush_interval`` seconds, or sooner when
``batch_items`` items are waiting. ``flush()`` blocks until everything put before it is
committed. Durability (README, docs/threats.md, Durability):

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

import collections
import logging
import os
import sqlite3
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepscope.errors import StoreError
from deepscope.store.blobs import write_blob
from deepscope.store.device import DeviceValue, read_device_items, read_device_values
from deepscope.store.process import (
    FORK_ORPHANS,
    close_all,
    close_ref,
    install_signal_handlers,
    register,
    unregister,
)
from deepscope.store.rows import classify, insert_items, split_valid
from deepscope.store.schema import DB_NAME, connect_writer, immediate
from deepscope.store.session import WriterOptions, bump, end_session, start_session
from deepscope.store.spill import append_spill, tmp_spill

__all__ = [
    "DeviceValue",
    "RunWriter",
    "StoreWarning",
    "WriterOptions",
    "classify",
    "close_all",
    "install_signal_handlers",
    "read_device_values",
]

log = logging.getLogger("deepscope.store")


class StoreWarning(UserWarning):
    """The run store is degraded: points go to a spill file instead of the database."""


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
        register(self)
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
            FORK_ORPHANS.append(self._conn)  # never closed here: it belongs to the parent
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
        unregister(self)

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

            util.Finalize(None, close_ref, args=(weakref.ref(self),), exitpriority=100)
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
                        self._queued_bytes -= len(it[6])
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
            self._session_id = start_session(
                conn, self.name, self._config_json, self._session_id, self._parent_session
            )
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
                self._write(items)
            except (sqlite3.Error, OSError, StoreError) as exc:
                self._spill(items, exc)
                return exc
            except Exception as exc:  # a bad item (the caller checks; this is the backstop)
                error = self._write_valid(items, exc)
                if error is not None:
                    return error
        if self._degraded:
            self._degraded = False
            log.warning("deepscope: run '%s' is writing to %s again", self.name, self.db_path)
        return None

    def _write(self, items: list[Item]) -> None:
        """Commit `items` in one transaction (the caller holds the I/O lock)."""
        if self._conn is None:
            self._open()
        else:
            self._check_identity()
        self._write_blobs(items)
        self._fault("commit")
        assert self._conn is not None
        try:
            with immediate(self._conn) as conn:
                insert_items(conn, items, self._tag_ids)
                bump(conn)
                conn.execute(
                    "UPDATE session SET heartbeat = ? WHERE id = ?",
                    (time.time(), self._session_id),
                )
        except BaseException:
            self._tag_ids = {}  # ids of tags inserted by the rolled-back transaction
            raise
        self._last_heartbeat = time.time()

    def _write_valid(self, items: list[Item], exc: Exception) -> BaseException | None:
        """A batch failed on something other than I/O: store every valid point, spill the
        values the store cannot hold (lone surrogates, steps beyond int64), count them."""
        good, bad = split_valid(items)
        if not bad:  # a bug, not a bad value: still never lose silently
            log.exception("deepscope: unexpected error writing run '%s'", self.name)
            self._spill(items, exc)
            return exc
        n = sum(_count(it) for it in bad)
        self.dropped += n
        self._spill_only(bad)
        self._note(
            f"deepscope: {n} point(s) logged to run '{self.name}' hold values the store cannot "
            f"keep ({exc}); they went to {self.spill_path}, every other point is stored",
            None,
            once_key="bad-values",
        )
        if not good:
            return None
        try:
            self._write(good)
        except (sqlite3.Error, OSError, StoreError) as exc2:
            self._spill(good, exc2)
            return exc2
        except Exception as exc2:
            log.exception("deepscope: unexpected error writing run '%s'", self.name)
            self._spill(good, exc2)
            return exc2
        return None

    def _resolve_all(self, items: list[Item]) -> list[Item]:
        """Finish what the caller deferred (device reads, histograms), outside the I/O lock."""
        if not any(it[0] in "dh" for it in items):
            return items
        try:
            items = read_device_items(items)
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
        """Bound the WAL even while readers keep snapshots open (docs/threats.md S3)."""
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
                end_session(self._conn, self._session_id, state)
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
        self._spill_only(items)
        self._enter_degraded(exc)

    def _spill_only(self, items: list[Item]) -> None:
        if self.spill_path is None:
            self.spill_path = self.run_dir.parent / f"{self.name}.spill.jsonl"
        written = append_spill([self.spill_path, tmp_spill(self.name)], items)
        if written is not None:
            self.spill_path = written
        elif not self.__dict__.get("_spill_error_logged"):
            self._spill_error_logged = True
            log.error("deepscope: cannot write a spill file either; points are lost")


def _resolve(item: Item) -> Item:
    if item[0] == "h" and hasattr(item[4], "result"):
        return ("h", item[1], item[2], item[3], item[4].result())
    return item


def _count(item: Item) -> int:
    if type(item) is tuple and item and item[0] in "sd":
        return len(item[3])
    return 0 if type(item) is _Marker else 1
