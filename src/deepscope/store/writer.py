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
import threading
import time
import warnings
import weakref
from pathlib import Path

from deepscope.errors import StoreError
from deepscope.store.commits import Item, Marker, WriterIO, count_points
from deepscope.store.device import DeviceValue, read_device_values
from deepscope.store.process import (
    FORK_ORPHANS,
    close_all,
    close_ref,
    install_signal_handlers,
    register,
    unregister,
)
from deepscope.store.protocol import WriteRecord
from deepscope.store.rows import classify
from deepscope.store.schema import DB_NAME
from deepscope.store.session import WriterOptions

__all__ = [
    "DeviceValue",
    "RunWriter",
    "SqliteRunWriter",
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


class RunWriter(WriterIO):
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
        self.fault_hook = None  # tests: called before each write step
        self.dropped = 0
        self.spill_path = None
        self._session_id = None
        self._parent_session = None
        self._conn = None
        self._db_ident = None
        self._tag_ids = {}
        self._degraded = False
        self._pending = []  # shown in the caller
        self._closed = False
        self._last_heartbeat = 0.0
        self._reset_runtime()
        register(self)
        self._open_or_degrade(first=True)
        self._start()

    @property
    def location(self) -> str:
        """The run's database file (for messages)."""
        return str(self.db_path)

    @property
    def directory(self) -> Path | None:
        """The run's folder (``LOGDIR/<name>``)."""
        return self.run_dir

    # ---- process bookkeeping (deepscope.store.process) ------------------------------------
    def fork_lock(self) -> threading.Lock | None:
        """The lock to hold across ``fork()`` (no I/O in flight), or None when this process's
        writer thread has not started."""
        if self._thread is not None and self._pid == os.getpid():
            return self._io_lock
        return None

    def after_fork_child(self) -> None:
        """In a forked child: forget the parent's connection and thread (see the module doc)."""
        self._after_fork_child()

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
    def put(self, item: WriteRecord, nbytes: int = 0) -> None:
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
        marker = Marker()
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
            markers: list[Marker] = []
            for _ in range(min(len(q), 50_000)):
                it = q.popleft()
                if type(it) is Marker:
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
                self.dropped += count_points(dropped)
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


SqliteRunWriter = RunWriter  # the SQLite backend's `deepscope.store.protocol.RunWriter`
