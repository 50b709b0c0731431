"""Read side of the SQLite run store (implements `deepscope.store.protocol`).

Every call opens a read-only connection (``mode=ro``), reads in one transaction (one
snapshot: a batch is seen whole or not at all) and closes it, so readers never hold a
snapshot between calls and never block the writer or its checkpoints.

A run.db is data from anywhere (docs/threats.md S10). Every read first verifies the schema
(`deepscope.store.checks.verify_schema`: no views, triggers or altered tables), runs under
a deadline (a progress handler; `read_deadline` seconds per call, `INFO_DEADLINE` for the
run's metadata) and converts every value strictly (`deepscope.store.records`). Whatever
goes wrong with one run raises `UnreadableRunError` (a `StoreError`) naming the run and the
reason, never a raw ``sqlite3`` or ``ValueError``; a run that ran past its deadline is
refused at once for `QUARANTINE` seconds (`ReadDeadlineError`), so one run never holds the
server's threads.
`SqliteStore.runs` lists such a run with status ``"unreadable"`` and its reason.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepscope.errors import NotFoundError, ReadDeadlineError, StoreError, UnreadableRunError
from deepscope.store.checks import (
    BadValue,
    NotInitialised,
    SchemaProblem,
    as_int,
    verify_schema,
)
from deepscope.store.downsample import histogram_ids, scalar_rows
from deepscope.store.protocol import (
    BlobInfo,
    EventInfo,
    HistogramPoint,
    RunInfo,
    ScalarPoint,
    TagInfo,
)
from deepscope.store.records import (
    blob_info,
    decode_value,
    event_info,
    histogram_point,
    run_row,
    run_status,
    scalar_point,
    session_rows,
    tag_info,
)
from deepscope.store.schema import DB_NAME, SCHEMA_VERSION, connect_reader, is_valid_run_name

__all__ = [
    "DEFAULT_READ_DEADLINE",
    "DEFAULT_STALE_AFTER",
    "INFO_DEADLINE",
    "QUARANTINE",
    "SqliteRunReader",
    "SqliteStore",
    "decode_value",
    "open_store",
    "run_status",
]

DEFAULT_STALE_AFTER = 30.0  # seconds without a heartbeat before a running run reads "interrupted"
# Deadlines (seconds). The pyramid answers a 2,000-point read of 1M points in ~16 ms and a
# whole-run scan of a large run takes well under a second, so 5 s only cuts off what no
# deepscope store needs; the run's metadata (one row plus its sessions) takes milliseconds,
# so a listing of many runs waits at most 1 s for a bad one.
DEFAULT_READ_DEADLINE = 5.0
INFO_DEADLINE = 1.0
QUARANTINE = 30.0  # after a deadline, the run is refused at once for this long
_QUARANTINED: dict[str, float] = {}  # db path -> monotonic time until which it is refused
_QUARANTINE_LOCK = threading.Lock()


def _newer(version: int) -> str:
    return (
        f"it was written by a newer deepscope (run store schema {version}; this deepscope "
        f"reads up to {SCHEMA_VERSION}): upgrade deepscope (pip install -U deepscope)"
    )


class SqliteRunReader:
    """Reads one run. Cheap to create; holds no connection between calls."""

    def __init__(
        self,
        name: str,
        directory: Path,
        *,
        stale_after: float = DEFAULT_STALE_AFTER,
        read_deadline: float = DEFAULT_READ_DEADLINE,
    ):
        self.name = name
        self.directory = directory
        self.db_path = directory / DB_NAME
        self.stale_after = stale_after
        self.read_deadline = read_deadline

    def _unreadable(self, reason: str) -> UnreadableRunError:
        return UnreadableRunError(self.name, reason)

    @contextmanager
    def _read(self, deadline: float | None = None) -> Iterator[sqlite3.Connection]:
        """One read transaction on a verified schema, under a deadline; every failure that
        comes from the database's content becomes `UnreadableRunError`."""
        seconds = self.read_deadline if deadline is None else min(deadline, self.read_deadline)
        key = str(self.db_path.absolute())
        with _QUARANTINE_LOCK:
            until = _QUARANTINED.get(key, 0.0)
        if time.monotonic() < until:
            raise ReadDeadlineError(
                self.name,
                f"a read took longer than {self.read_deadline:g} s; it is refused for "
                f"{QUARANTINE:g} s after that (retry later)",
            )
        if not self.db_path.is_file():
            raise NotFoundError(f"run '{self.name}' has no {DB_NAME} (deleted?)")
        if self.db_path.is_symlink() or self.db_path.resolve().parent != self.directory.resolve():
            raise self._unreadable(f"its {DB_NAME} is a link (run databases must be files)")
        try:
            conn = connect_reader(self.db_path, deadline=seconds)
        except StoreError as exc:
            raise self._unreadable(str(exc)) from exc
        except sqlite3.Error as exc:
            raise self._error(exc, key) from exc
        try:
            conn.execute("BEGIN")
            version = verify_schema(conn)
            if version > SCHEMA_VERSION:  # its tables may mean other things: never guess
                raise self._unreadable(_newer(version))
            yield conn
        except NotInitialised as exc:
            raise NotFoundError(f"run '{self.name}' is not initialised yet") from exc
        except SchemaProblem as exc:
            raise self._unreadable(f"{DB_NAME} is not a deepscope run store: {exc}") from exc
        except BadValue as exc:
            raise self._unreadable(f"wrong value types in {DB_NAME}: {exc}") from exc
        except (TypeError, ValueError, OverflowError) as exc:  # content that is not ours
            raise self._unreadable(f"wrong values in {DB_NAME}: {exc}") from exc
        except sqlite3.Error as exc:
            raise self._error(exc, key) from exc
        finally:
            conn.close()  # ends the read transaction

    def _error(self, exc: sqlite3.Error, key: str) -> UnreadableRunError:
        if "interrupt" in str(exc):
            now = time.monotonic()
            with _QUARANTINE_LOCK:
                for k in [k for k, until in _QUARANTINED.items() if until <= now]:
                    del _QUARANTINED[k]  # forget the expired ones: the map stays small
                _QUARANTINED[key] = now + QUARANTINE
            return ReadDeadlineError(
                self.name,
                f"a read took longer than {self.read_deadline:g} s (a huge or hostile "
                f"{DB_NAME}); it is refused for {QUARANTINE:g} s (retry later)",
            )
        return self._unreadable(f"{DB_NAME} is corrupt or not a database ({exc})")

    def info(self) -> RunInfo:
        with self._read(INFO_DEADLINE) as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            row = conn.execute("SELECT name, created, config FROM run WHERE id = 1").fetchone()
            who = ", pid, host, proc_id" if version >= 3 else ", pid, host, NULL"
            rows = conn.execute(f"SELECT parent, heartbeat, ended, state{who} FROM session")
            sessions = session_rows(rows.fetchall())
            config: Any
            created, config = (0.0, {}) if row is None else run_row(row)
        now = time.time()
        status = run_status(sessions, now, self.stale_after)
        heartbeat = max((s[1] for s in sessions), default=0.0)
        if row is None:
            created = heartbeat or self.db_path.stat().st_mtime
        finished = None
        if status == "finished":
            finished = max((s[2] for s in sessions if s[2] is not None), default=None)
        return RunInfo(
            name=self.name,
            status=status,
            created=float(created),
            heartbeat=float(heartbeat),
            config=config if isinstance(config, dict) else {"value": config},
            finished=finished,
        )

    def tags(self) -> list[TagInfo]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT name, kind, count, first_step, last_step FROM tag WHERE count > 0 "
                "ORDER BY kind, name"
            ).fetchall()
            return [tag_info(r) for r in rows]

    @staticmethod
    def _tag_id(conn: sqlite3.Connection, tag: str, kind: str) -> int | None:
        row = conn.execute("SELECT id FROM tag WHERE name = ? AND kind = ?", (tag, kind)).fetchone()
        return None if row is None else as_int(row[0], "tag.id")

    def scalars(
        self,
        tag: str,
        *,
        max_points: int = 2000,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[ScalarPoint]:
        max_points = int(max_points)
        start_step = None if start_step is None else int(start_step)
        end_step = None if end_step is None else int(end_step)
        with self._read() as conn:
            tid = self._tag_id(conn, tag, "scalar")
            if tid is None:
                return []
            rows = scalar_rows(
                conn, tid, max_points=max_points, start_step=start_step, end_step=end_step
            )
            return [scalar_point(r) for r in rows]

    def histograms(self, tag: str, *, max_points: int = 100) -> list[HistogramPoint]:
        max_points = int(max_points)
        with self._read() as conn:
            tid = self._tag_id(conn, tag, "histogram")
            if tid is None:
                return []
            ids = histogram_ids(conn, tid, max_points=max_points)
            rows: list[tuple[Any, ...]] = []
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                rows += conn.execute(
                    "SELECT step, wall_time, edges, counts, count, n_nan, n_posinf, n_neginf, "
                    f"min, max, sum, sum_sq FROM histogram WHERE id IN ({','.join('?' * len(chunk))})"
                    " ORDER BY step, id",
                    chunk,
                ).fetchall()
            rows.sort(key=lambda r: as_int(r[0], "histogram.step"))
            return [histogram_point(r) for r in rows]

    def blobs(
        self, kind: str, tag: str | None = None, *, limit: int | None = None
    ) -> list[BlobInfo]:
        sql = (
            "SELECT b.id, b.kind, t.name, b.step, b.wall_time, b.path, b.meta "
            "FROM blob b JOIN tag t ON t.id = b.tag_id WHERE b.kind = ?"
        )
        args: list[Any] = [kind]
        if tag is not None:
            sql += " AND t.name = ?"
            args.append(tag)
        if limit is None:
            sql += " ORDER BY b.step, b.id"
        else:  # the latest `limit`, oldest first
            sql = f"SELECT * FROM ({sql} ORDER BY b.step DESC, b.id DESC LIMIT ?) ORDER BY 4, 1"
            args.append(max(0, int(limit)))
        with self._read() as conn:
            return [blob_info(r) for r in conn.execute(sql, args).fetchall()]

    def blob(self, blob_id: int) -> BlobInfo:
        """One blob by id; `NotFoundError` if there is none."""
        blob_id = int(blob_id)
        with self._read() as conn:
            r = conn.execute(
                "SELECT b.id, b.kind, t.name, b.step, b.wall_time, b.path, b.meta "
                "FROM blob b JOIN tag t ON t.id = b.tag_id WHERE b.id = ?",
                (blob_id,),
            ).fetchone()
            info = None if r is None else blob_info(r)
        if info is None:
            raise NotFoundError(f"run '{self.name}' has no blob {blob_id}")
        return info

    def blob_path(self, blob: BlobInfo) -> Path:
        """Absolute path of a blob, confined to the run directory (`NotFoundError` otherwise)."""
        root = self.directory.resolve()
        rel = str(blob.path)
        if "\x00" in rel or os.path.isabs(rel) or "\\" in rel:
            raise NotFoundError(f"blob path {rel!r} is not inside run '{self.name}'")
        path = (root / rel).resolve()
        if not path.is_relative_to(root) or path == root:
            raise NotFoundError(f"blob path {rel!r} is not inside run '{self.name}'")
        if not path.is_file():
            raise NotFoundError(f"blob file {rel!r} of run '{self.name}' is missing")
        return path

    def read_blob(self, blob: BlobInfo, *, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        """The bytes of a blob (confined as in `blob_path`); `StoreError` past `max_bytes`."""
        path = self.blob_path(blob)
        if path.stat().st_size > max_bytes:
            raise StoreError(f"blob {blob.path} is larger than {max_bytes} bytes")
        return path.read_bytes()

    def events(self, *, limit: int = 1000) -> list[EventInfo]:
        limit = max(0, int(limit))
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, step, wall_time, severity, kind, layer, message FROM event "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            rows.reverse()
            return [event_info(r) for r in rows]

    def version(self) -> int:
        with self._read() as conn:
            row = conn.execute("SELECT version FROM counter WHERE id = 1").fetchone()
            return 0 if row is None else as_int(row[0], "counter.version")


class SqliteStore:
    """A log directory of SQLite runs (``LOGDIR/<run>/run.db``)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        stale_after: float = DEFAULT_STALE_AFTER,
        read_deadline: float = DEFAULT_READ_DEADLINE,
    ):
        self.root = Path(root)
        self.stale_after = stale_after
        self.read_deadline = read_deadline
        if not self.root.is_dir():
            raise NotFoundError(f"log directory {self.root} does not exist")

    def run_names(self, *, filter: str = "") -> list[str]:
        """Names of the runs in the log directory (sorted), optionally containing `filter`."""
        names = []
        try:
            entries = list(os.scandir(self.root))
        except OSError as exc:
            raise StoreError(f"cannot list {self.root}: {exc}") from exc
        needle = filter.lower()
        for e in entries:
            if needle and needle not in e.name.lower():
                continue
            if is_valid_run_name(e.name) and os.path.isfile(os.path.join(e.path, DB_NAME)):
                names.append(e.name)
        names.sort()
        return names

    def count_runs(self, *, filter: str = "") -> int:
        return len(self.run_names(filter=filter))

    def versions(self, names: Sequence[str]) -> dict[str, int | None]:
        """`SqliteRunReader.version` of each run (None: gone or unreadable)."""
        out: dict[str, int | None] = {}
        for name in names:
            try:
                out[name] = self.run(name).version()
            except (StoreError, NotFoundError):
                out[name] = None
        return out

    def runs(
        self,
        *,
        offset: int = 0,
        limit: int = 500,
        filter: str = "",
        include_unreadable: bool = True,
    ) -> list[RunInfo]:
        """The runs (sorted by name). A run that cannot be read is listed with status
        ``"unreadable"`` and the reason in `RunInfo.error` (left out if not
        `include_unreadable`); a run deleted meanwhile is left out."""
        names = self.run_names(filter=filter)
        offset = max(0, int(offset))
        limit = max(0, int(limit))
        out = []
        for name in names[offset : offset + limit]:
            try:
                out.append(self.run(name).info())
            except NotFoundError:
                continue  # deleted or not initialised meanwhile
            except StoreError as exc:
                if include_unreadable:
                    out.append(self._unreadable_info(name, exc))
        return out

    def _unreadable_info(self, name: str, exc: StoreError) -> RunInfo:
        try:
            created = (self.root / name / DB_NAME).stat().st_mtime
        except OSError:
            created = 0.0
        reason = exc.reason if isinstance(exc, UnreadableRunError) else str(exc)
        return RunInfo(name=name, status="unreadable", created=created, heartbeat=0.0, error=reason)

    def delete_run(self, name: str, *, force: bool = False) -> None:
        """Delete run `name` (its folder); see `deepscope.store.admin.delete_sqlite_run`."""
        from deepscope.store.admin import delete_sqlite_run

        delete_sqlite_run(self.root, name, force=force, stale_after=self.stale_after)

    def run(self, name: str) -> SqliteRunReader:
        if not isinstance(name, str) or not is_valid_run_name(name):
            raise NotFoundError(f"no run named {name!r}")
        directory = self.root / name
        root = self.root.resolve()
        resolved = directory.resolve()
        if resolved.parent != root or not (resolved / DB_NAME).is_file():
            raise NotFoundError(f"no run named {name!r} in {self.root}")
        return SqliteRunReader(
            name, directory, stale_after=self.stale_after, read_deadline=self.read_deadline
        )


def open_store(
    logdir: str | os.PathLike[str],
    *,
    stale_after: float = DEFAULT_STALE_AFTER,
    read_deadline: float = DEFAULT_READ_DEADLINE,
) -> SqliteStore:
    """Open a log directory for reading (see `deepscope.store.open`)."""
    return SqliteStore(logdir, stale_after=stale_after, read_deadline=read_deadline)
