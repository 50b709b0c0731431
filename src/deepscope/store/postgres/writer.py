"""`PostgresRunWriter`: the run writer of a ``postgresql://`` store.

The queue, the background thread, back-pressure, fork and exit handling are those of the
SQLite writer (`deepscope.store.writer.RunWriter`, whose I/O half this class replaces).
Each batch is one transaction (`deepscope.store.postgres.batch.write_batch`) with an id of
its own, so:

- kill -9 loses at most one flush interval; a batch is all-or-nothing;
- when the database goes away (restart, a dropped connection, the network), the batch goes
  to a local spill file (``DEEPSCOPE_SPILL_DIR`` or the temp dir,
  ``deepscope-pg-<run>-<pid>-<database hash>.spill.jsonl``; kept in memory, bounded, if that cannot be
  written either), the writer reconnects with exponential backoff (0.25 s to 10 s, jittered)
  and replays the spilled batches in order before new ones; a batch whose commit was cut
  off after the server had committed it is skipped on replay (its id is already there);
- `dropped` counts points not in the database now (spilled ones come off when replayed);
- the URL's password is never printed or logged (`deepscope.store.postgres.url.mask`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from deepscope.errors import StoreError
from deepscope.store import spill as plain_spill
from deepscope.store.liveness import process_id, start_time
from deepscope.store.postgres.batch import RunDeleted, count_points, write_batch
from deepscope.store.postgres.schema import ensure_schema
from deepscope.store.postgres.spill import append_batch, encode_batch, read_batches
from deepscope.store.postgres.url import connect, mask, scrub
from deepscope.store.process import register
from deepscope.store.protocol import WriteRecord
from deepscope.store.rows import split_valid
from deepscope.store.session import WriterOptions
from deepscope.store.writer import RunWriter

__all__ = ["PostgresRunWriter"]

log = logging.getLogger("deepscope.store")

BACKOFF_FIRST = 0.25
BACKOFF_MAX = 10.0
Batch = tuple[str, list[WriteRecord]]


def _spill_dir() -> Path:
    return Path(os.environ.get("DEEPSCOPE_SPILL_DIR") or tempfile.gettempdir())


class PostgresRunWriter(RunWriter):
    """Writes one run into a PostgreSQL database. See the module doc."""

    def __init__(
        self,
        url: str,
        name: str,
        *,
        config_json: str = "{}",
        options: WriterOptions | None = None,
    ) -> None:
        self.url = url
        self.name = name
        self.run_dir = _spill_dir()  # only the spill file lives on this machine
        self.db_path = self.run_dir  # unused: no file database
        self.options = options or WriterOptions()
        self._batch_items = self.options.batch_items
        self._config_json = config_json
        self.fault_hook = None
        self.dropped = 0
        self.spill_path = None
        self._session_id = None
        self._parent_session = None
        self._conn = None
        self._db_ident = None
        self._tag_ids = {}
        self._degraded = False
        self._pending = []
        self._closed = False
        self._last_heartbeat = 0.0
        self._run_id: int | None = None
        self._held: list[Batch] = []  # spilled batches the spill file could not take
        self._spilled_file: Path | None = None  # spill file holding batches not replayed yet
        self._backoff = BACKOFF_FIRST
        self._retry_at = 0.0
        self.replayed = 0  # batches replayed from the spill (tests read it)
        self._reset_runtime()
        register(self)
        self._open_or_degrade(first=True)
        self._start()

    def __repr__(self) -> str:
        return f"<PostgresRunWriter {self.name!r} at {mask(self.url)}>"

    @property
    def location(self) -> str:
        return f"{mask(self.url)} (run {self.name!r})"

    @property
    def directory(self) -> Path | None:
        return None

    # ---- connection ---------------------------------------------------------------------
    def _open_or_degrade(self, *, first: bool) -> None:
        try:
            self._open()
        except StoreError as exc:
            if self.options.strict and first:
                raise
            self._enter_degraded(exc)
            self._schedule_retry()
            return
        try:
            self._replay_orphans()
        except Exception as exc:  # noqa: BLE001 - the database went away again: retried
            self._lost(exc)

    def _open(self) -> None:
        self._fault("connect")
        conn = connect(self.url, application="deepscope-writer")
        try:
            ensure_schema(conn, mask(self.url))
            self._run_id, self._session_id = self._start_session(conn)
        except Exception as exc:
            _close_quietly(conn)
            if isinstance(exc, StoreError):
                raise
            raise StoreError(self._scrub(f"cannot start run '{self.name}': {exc}")) from None
        self._conn = conn
        self._tag_ids = {}
        self._last_heartbeat = time.time()

    def _start_session(self, conn: Any) -> tuple[int, int]:
        now = time.time()
        created = now if self.options.created is None else self.options.created
        with conn.transaction():
            conn.execute(
                "INSERT INTO deepscope.run (name, created, config) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (self.name, created, self._config_json),
            )
            if self._config_json != "{}":
                conn.execute(
                    "UPDATE deepscope.run SET config = %s WHERE name = %s AND config = '{}'",
                    (self._config_json, self.name),
                )
            run_id = conn.execute(
                "SELECT id FROM deepscope.run WHERE name = %s", (self.name,)
            ).fetchone()[0]
            session = None
            if self._session_id is not None:  # a reconnect: the same session goes on
                session = conn.execute(
                    "UPDATE deepscope.session SET heartbeat = %s WHERE id = %s AND pid = %s"
                    " RETURNING id",
                    (now, self._session_id, os.getpid()),
                ).fetchone()
            if session is None:
                session = conn.execute(
                    "INSERT INTO deepscope.session (run_id, pid, host, parent, started,"
                    " heartbeat, proc_id) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (run_id, os.getpid(), socket.gethostname(), self._parent_session, now, now,
                     process_id()),
                ).fetchone()  # fmt: skip
            conn.execute("UPDATE deepscope.run SET version = version + 1 WHERE id = %s", (run_id,))
        return int(run_id), int(session[0])

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _close_quietly(conn)

    def _check_identity(self) -> None:  # a file-store concern
        return None

    def _scrub(self, text: str) -> str:
        return scrub(text, self.url)

    def _schedule_retry(self) -> None:
        self._retry_at = time.monotonic() + self._backoff * random.uniform(0.5, 1.0)
        self._backoff = min(BACKOFF_MAX, self._backoff * 2)

    def _reconnect(self, *, force: bool = False) -> bool:
        """Connected with nothing left to replay? Tries (at most once per backoff) to
        reconnect and replay the spilled batches."""
        if self._conn is not None and not self._spilled_file and not self._held:
            return True
        if not force and time.monotonic() < self._retry_at:
            return False
        try:
            if self._conn is None:
                self._open()
                self._replay_orphans()
            self._replay()
        except Exception as exc:
            self._lost(exc)
            return False
        self._backoff = BACKOFF_FIRST
        if self._degraded:
            self._degraded = False
            log.warning("deepscope: run '%s' is writing to %s again", self.name, mask(self.url))
        return True

    def _drain(self) -> None:
        super()._drain()
        if self._conn is None or self._spilled_file is not None or self._held:
            with self._io_lock:  # every flush interval while degraded (within the backoff)
                self._reconnect()

    def _lost(self, exc: BaseException) -> None:
        self._drop_connection()
        self._enter_degraded(exc)
        self._schedule_retry()

    # ---- commits ------------------------------------------------------------------------
    def _commit(self, items: list[Any]) -> BaseException | None:
        records: list[WriteRecord] = self._resolve_all(items)
        if not records:
            return None
        batch: Batch = (uuid.uuid4().hex, records)
        with self._io_lock:
            if not self._reconnect():
                self._spill_batch(batch)
                return StoreError(f"the PostgreSQL store {mask(self.url)} is unreachable")
            try:
                self._write_batch(batch)
            except _Transient as exc:
                self._spill_batch(batch)
                self._lost(exc.cause)
                return exc.cause
            except _Poison as exc:
                return self._write_valid_pg(batch, exc.cause)
        return None

    def _write_batch(self, batch: Batch) -> bool:
        """Commit one batch (False: committed before). Raises `_Transient` (connection or
        server trouble: spill and retry) or `_Poison` (values the database refuses)."""
        import psycopg

        conn: Any = self._conn
        if conn is None or self._run_id is None:
            raise _Transient(StoreError("not connected"))
        try:
            self._fault("commit")
            with conn.transaction():
                done = write_batch(conn, self._run_id, self._session_id, batch[0], batch[1],
                                   self._tag_ids)  # fmt: skip
            self._last_heartbeat = time.time()
            return done
        except RunDeleted:
            self._tag_ids = {}
            self._restart_run(conn)
            return self._write_batch(batch)
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError, StoreError) as exc:
            self._tag_ids = {}
            raise _Transient(exc) from None
        except (psycopg.DataError, psycopg.IntegrityError, ValueError, TypeError, OverflowError,
                UnicodeError) as exc:  # fmt: skip
            self._tag_ids = {}  # values the database refuses: retrying cannot help
            if conn.broken or conn.closed:
                raise _Transient(exc) from None
            raise _Poison(exc) from None
        except psycopg.Error as exc:  # anything else (a schema problem...): keep and retry
            self._tag_ids = {}
            raise _Transient(exc) from None

    def _restart_run(self, conn: Any) -> None:
        """The run was deleted (`deepscope rm --force`) while this writer wrote it: start it
        again, as the log-directory store does (a new run of the same name, a new session);
        the batch that found it gone goes into the new run."""
        import psycopg

        self._session_id = None  # the session row went with the run
        try:
            self._run_id, self._session_id = self._start_session(conn)
        except (psycopg.Error, OSError) as exc:
            raise _Transient(exc) from None
        self._note(
            f"deepscope: run '{self.name}' was deleted from {mask(self.url)} while it was "
            "logging (deepscope rm --force); what it held is gone. Logging continues into a "
            "new run of the same name.",
            None,
        )

    def _write_valid_pg(self, batch: Batch, exc: BaseException) -> BaseException | None:
        """A batch the database refused for its values: store every valid record, keep the
        others in the plain spill file (never replayed: they would fail again), count them."""
        good, bad = split_valid(batch[1])
        if not good or not bad:  # cannot tell the bad ones apart: none is replayable
            bad, good = batch[1], []
        n = count_points(bad)
        self.dropped += n
        self._keep_unstorable(bad)
        self._note(self._scrub(
            f"deepscope: {n} point(s) logged to run '{self.name}' hold values the PostgreSQL "
            f"store refuses ({exc}); they went to {self.spill_path}, every other point is stored"
        ), None, once_key="bad-values")  # fmt: skip
        if good:
            try:
                self._write_batch((batch[0], good))
            except _Transient as t:
                self._spill_batch((batch[0], good))
                self._lost(t.cause)
                return t.cause
            except _Poison as p:
                self.dropped += count_points(good)
                self._keep_unstorable(good)
                return p.cause
        return None

    def _keep_unstorable(self, records: list[WriteRecord]) -> None:
        target = _spill_dir() / f"deepscope-pg-{self.name}-{os.getpid()}.unstorable.jsonl"
        written = plain_spill.append_spill([target], records)
        if written is not None:
            self.spill_path = written

    # ---- spill and replay ---------------------------------------------------------------
    def _spill_file(self) -> Path:
        return _spill_dir() / f"deepscope-pg-{self.name}-{os.getpid()}-{self._db}.spill.jsonl"

    @property
    def _db(self) -> str:
        """Which database a spill file belongs to (replayed into that one only)."""
        parts = urlsplit(self.url)
        where = f"{parts.username}@{parts.hostname}:{parts.port}{parts.path}?{parts.query}"
        return hashlib.sha256(where.encode()).hexdigest()[:12]

    def _spill_batch(self, batch: Batch) -> None:
        n = count_points(batch[1])
        self.dropped += n
        if self._held:  # after one batch the file could not take, keep logging order
            self._hold(batch)
            return
        path = self._spill_file()
        try:
            self._fault("spill")
            append_batch(path, encode_batch(*batch))
            self._spilled_file = self.spill_path = path
            return
        except OSError as exc:
            if not self.__dict__.get("_spill_error_logged"):
                self._spill_error_logged = True
                log.error("deepscope: cannot write the spill file %s (%s); batches are kept "
                          "in memory until the database is back", path, exc)  # fmt: skip
        self._hold(batch)

    def _hold(self, batch: Batch) -> None:
        self._held.append(batch)
        held = sum(count_points(b[1]) for b in self._held)
        while self._held and held > self.options.max_queue:
            lost = self._held.pop(0)
            held -= count_points(lost[1])
            self._note(
                f"deepscope: run '{self.name}': the database and the spill file are both "
                "unavailable and the in-memory reserve is full; points are lost "
                f"(not stored so far: {self.dropped})",
                None,
                once_key="lost",
            )

    def _replay(self) -> None:
        """Write the spilled batches, in order (raises on trouble: the caller degrades)."""
        path = self._spilled_file
        if path is not None:
            for batch in read_batches(path):
                self._replay_one(batch)
            try:
                path.unlink()
            except OSError:
                pass
            self._spilled_file = None
        while self._held:
            self._replay_one(self._held[0])
            self._held.pop(0)

    def _replay_orphans(self) -> None:
        """Replay the spill files of this run left by processes that are gone (kill -9
        while the database was down): their acknowledged points reach the database when
        the run is joined again on this host. Batch ids make a second replay harmless."""
        for path in _orphan_spills(self.name, self._db):
            for batch in read_batches(path):
                try:
                    self._write_batch(batch)
                except _Transient as exc:
                    raise exc.cause from None
                except _Poison as exc:
                    self._write_valid_pg(batch, exc.cause)
            try:
                path.unlink()
            except OSError:
                pass
            log.warning("deepscope: run '%s': replayed %s, left by a writer that is gone",
                        self.name, path)  # fmt: skip

    def _replay_one(self, batch: Batch) -> None:
        try:
            self._write_batch(batch)
        except _Transient as exc:
            raise exc.cause from None
        except _Poison as exc:
            self.dropped = max(0, self.dropped - count_points(batch[1]))
            self._write_valid_pg(batch, exc.cause)  # counts what it cannot store
        else:
            self.dropped = max(0, self.dropped - count_points(batch[1]))
        self.replayed += 1

    # ---- heartbeat and end --------------------------------------------------------------
    def _write_heartbeat(self) -> None:
        import psycopg

        with self._io_lock:
            self._last_heartbeat = time.time()
            if not self._reconnect():
                return
            conn: Any = self._conn
            if conn is None:
                return
            try:
                self._fault("heartbeat")
                with conn.transaction():
                    conn.execute(
                        "UPDATE deepscope.session SET heartbeat = %s WHERE id = %s",
                        (time.time(), self._session_id),
                    )
            except (psycopg.Error, OSError) as exc:
                self._lost(exc)

    def _maybe_checkpoint(self) -> None:
        return None

    def _end_session(self, state: str) -> None:
        import psycopg

        with self._io_lock:
            conn: Any = self._conn if self._reconnect(force=True) else None
            if conn is None:
                if self._spilled_file is not None:
                    log.error("deepscope: run '%s' ends with batches in %s that the database "
                              "never got", self.name, self._spilled_file)  # fmt: skip
                return
            try:
                now = time.time()
                with conn.transaction():
                    conn.execute(
                        "UPDATE deepscope.session SET ended = %s, heartbeat = %s, state = %s"
                        " WHERE id = %s",
                        (now, now, state, self._session_id),
                    )
                    conn.execute(
                        "UPDATE deepscope.run SET version = version + 1 WHERE id = %s",
                        (self._run_id,),
                    )
            except (psycopg.Error, OSError) as exc:
                log.warning(self._scrub(f"deepscope: could not mark run '{self.name}' {state}: "
                                        f"{exc}"))  # fmt: skip
            finally:
                self._drop_connection()

    # ---- messages -----------------------------------------------------------------------
    def _fault_message(self, exc: BaseException) -> str:
        return self._scrub(
            f"deepscope: cannot write run '{self.name}' to {mask(self.url)}: {exc}. "
            "Batches go to a local spill file and are replayed when the database is back "
            "(run.dropped counts the points not in the database now)."
        )

    def _note(self, message: str, error: BaseException | None, once_key: str = "") -> None:
        super()._note(self._scrub(message), error, once_key)


class _Transient(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Poison(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _orphan_spills(name: str, db: str) -> list[Path]:
    """Spill files of run `name` of database `db` in the spill folder whose process is gone."""
    prefix, suffix = "deepscope-pg-", ".spill.jsonl"
    out = []
    try:
        entries = list(os.scandir(_spill_dir()))
    except OSError:
        return []
    for e in entries:
        if not (e.name.startswith(prefix) and e.name.endswith(suffix)):
            continue
        m = re.fullmatch(re.escape(name) + r"-(\d+)-" + db, e.name[len(prefix) : -len(suffix)])
        if m is None or int(m.group(1)) == os.getpid() or _running(int(m.group(1))):
            continue
        out.append(Path(e.path))
    return sorted(out, key=lambda p: p.stat().st_mtime if p.exists() else 0.0)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it runs
        return True
    state = start_time(pid)
    return state is None or state[0] not in "ZXx"  # a zombie is gone; no /proc: it runs


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass
