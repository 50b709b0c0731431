"""The I/O side of `deepscope.store.writer.RunWriter`, run by its background thread.

`WriterIO` holds what touches the run directory: the connection (opened, checked against a
run.db deleted or replaced under it, dropped), the batch commit (one ``BEGIN IMMEDIATE …
COMMIT`` per batch), the backstop for values the store cannot hold (every valid point is
stored, the bad ones go to the spill file and are counted), heartbeats, WAL checkpoints and
degraded mode (a store fault sends the batch to a spill file; logging resumes when the
fault goes). `RunWriter` adds the queue, the thread and the caller's API on top.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepscope.errors import StoreError
from deepscope.store.blobs import write_blob
from deepscope.store.device import read_device_items
from deepscope.store.rows import insert_items, split_valid
from deepscope.store.schema import DB_NAME, connect_writer, immediate
from deepscope.store.session import WriterOptions, bump, end_session, start_session
from deepscope.store.spill import append_spill, tmp_spill

__all__ = ["FaultHook", "Item", "Marker", "NotRegularFileError", "WriterIO", "count_points"]

log = logging.getLogger("deepscope.store")


class Marker:
    """A ``flush()`` in the queue: set once everything queued before it is committed."""

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
#   Marker                                         flush()
Item = Any

FaultHook = Callable[[str], None]


class WriterIO:
    """The connection, commits and degraded mode of a `RunWriter` (its base class).

    The connection is opened first by `RunWriter.__init__` (or a forked child's first
    ``put``); everything else here runs in the writer thread, except `_note`, which the
    caller's thread uses too. The attributes are set by `RunWriter` and the methods here.
    """

    run_dir: Path
    name: str
    db_path: Path
    options: WriterOptions
    fault_hook: FaultHook | None
    dropped: int
    spill_path: Path | None
    _config_json: str
    _session_id: int | None
    _parent_session: int | None
    _conn: sqlite3.Connection | None
    _db_ident: tuple[int, int] | None
    _tag_ids: dict[tuple[str, str], int]
    _degraded: bool
    _spill_error_logged: bool
    _pending: list[tuple[str, BaseException | None]]
    _last_heartbeat: float
    _io_lock: threading.Lock

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
        _refuse_special_file(self.db_path)  # a FIFO is never opened (it could block)
        conn = connect_writer(self.db_path, durability=self.options.durability)
        try:
            self._session_id = start_session(
                conn,
                self.name,
                self._config_json,
                self._session_id,
                self._parent_session,
                created=self.options.created,
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
        n = sum(count_points(it) for it in bad)
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
            self.dropped += sum(count_points(it) for it in items if it[0] == "d")
            items = [it for it in items if it[0] != "d"]
            log.warning("deepscope: could not read tensors logged to run '%s': %s", self.name, exc)
        out = []
        for it in items:
            try:
                out.append(_resolve(it) if it[0] == "h" else it)
            except Exception as exc:  # a histogram that cannot be finished: count it
                self.dropped += count_points(it)
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
        advice = (
            "Remove or rename it (a run's run.db and its -wal/-shm files must be regular files)"
            if isinstance(exc, NotRegularFileError)
            else "Free disk space or fix the directory's permissions"
        )
        return (
            f"deepscope: cannot write run '{self.name}' to {self.db_path}: {exc}. "
            f"{advice}; until then points go to "
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
        n = sum(count_points(it) for it in items)
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


def count_points(item: Item) -> int:
    """How many points `item` holds (a flush marker holds none)."""
    if isinstance(item, tuple) and item and item[0] in "sd":
        return len(item[3])
    return 0 if type(item) is Marker else 1


class NotRegularFileError(OSError):
    """A run's ``run.db`` exists but is not a regular file (a FIFO, a directory...)."""


def _refuse_special_file(db: Path) -> None:
    """`NotRegularFileError` when `db` (or its WAL / shared-memory sidecar) exists and is not
    a regular file (``os.stat`` only: nothing is opened)."""
    for suffix in ("", "-wal", "-shm"):
        try:
            mode = os.stat(str(db) + suffix).st_mode
        except FileNotFoundError:
            continue  # a new run: SQLite creates it
        if stat.S_ISREG(mode):
            continue
        kinds = ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"),
                 (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"))  # fmt: skip
        kind = next((label for test, label in kinds if test(mode)), "special file")
        raise NotRegularFileError(f"{DB_NAME}{suffix} is not a regular file (a {kind})")
