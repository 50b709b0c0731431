"""Read side of the PostgreSQL run store (implements `deepscope.store.protocol.Store`).

Each call borrows a connection from a small pool, reads in one ``REPEATABLE READ READ ONLY``
transaction (one snapshot: a batch is seen whole or not at all) under a
``statement_timeout`` of `read_deadline` seconds (`ReadDeadlineError` past it), and returns
it. Rows become protocol records through the same strict converters as SQLite
(`deepscope.store.records`). Blobs live in the database; `blob_path` fetches one into a local
cache folder (content-addressed, so a cached file never goes stale).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepscope.errors import NotFoundError, ReadDeadlineError, StoreError, UnreadableRunError
from deepscope.store.blobs import write_blob
from deepscope.store.checks import BadValue, as_float, as_str
from deepscope.store.postgres.downsample import histogram_ids, scalar_rows
from deepscope.store.postgres.schema import ensure_schema
from deepscope.store.postgres.url import connect, mask, scrub
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
    event_info,
    histogram_point,
    run_row,
    run_status,
    scalar_point,
    session_rows,
    tag_info,
)
from deepscope.store.schema import is_valid_run_name

__all__ = ["PostgresRunReader", "PostgresStore", "default_cache_dir"]

POOL_SIZE = 8
CONFIG_CACHE = 50_000  # parsed run configs kept (by their JSON text)
_SESSION_COLS = "s.parent, s.heartbeat, s.ended, s.state, s.pid, s.host, s.proc_id"
_BLOB_COLS = "b.id, b.kind, t.name, b.step, b.wall_time, b.path, b.meta"


def default_cache_dir(url: str) -> Path:
    """Where blobs of the store at `url` are cached on this machine."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(mask(url).encode()).hexdigest()[:16]
    return Path(base) / "deepscope" / "postgres" / key


class _Pool:
    """At most `size` idle connections kept; a broken one is dropped."""

    def __init__(self, url: str, size: int, deadline: float) -> None:
        self.url, self.size, self.deadline = url, size, deadline
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._schema_ok = False

    def _new(self) -> Any:
        import psycopg

        ms = max(1, int(self.deadline * 1000))
        conn = connect(self.url, application="deepscope-reader", autocommit=False)
        if not self._schema_ok:
            ensure_schema(conn, mask(self.url))
            self._schema_ok = True
        conn.execute(f"SET statement_timeout = {ms}")
        # Every read is an index range scan or primary-key lookup by design; the planner's
        # statistics lag behind a table that grows by 100k rows a second (autovacuum
        # analyses it a minute later) and it would then pick bitmap scans of a whole tag
        # or hash joins. Those plans are switched off for the readers' sessions.
        for plan in ("bitmapscan", "hashjoin", "mergejoin"):
            conn.execute(f"SET enable_{plan} = off")
        conn.commit()
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._new()
        ok = False
        try:
            with conn.transaction():
                yield conn
            ok = True
        finally:
            if ok and not conn.broken:
                with self._lock:
                    if len(self._idle) < self.size:
                        self._idle.append(conn)
                        conn = None
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing a broken connection
                    pass

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class PostgresStore:
    """The runs of one PostgreSQL database (``postgresql://user@host/db``)."""

    def __init__(
        self,
        url: str,
        *,
        stale_after: float = 30.0,
        read_deadline: float = 5.0,
        cache_dir: str | os.PathLike[str] | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        self.url = url
        self.stale_after = stale_after
        self.read_deadline = read_deadline
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir(url)
        self.pool = _Pool(url, pool_size, read_deadline)
        self._configs: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<PostgresStore {mask(self.url)}>"

    @property
    def location(self) -> str:
        return mask(self.url)

    @contextmanager
    def read(self, what: str) -> Iterator[Any]:
        """One read transaction; driver errors become `StoreError`s (password scrubbed)."""
        import psycopg

        try:
            with self.pool.connection() as conn:
                yield conn
        except psycopg.errors.QueryCanceled as exc:
            raise ReadDeadlineError(
                what, f"a read took longer than {self.read_deadline:g} s (retry later)"
            ) from exc
        except BadValue as exc:
            raise UnreadableRunError(what, f"wrong value types in the database: {exc}") from exc
        except psycopg.Error as exc:
            raise StoreError(
                f"reading {what} from {mask(self.url)} failed: {scrub(str(exc), self.url)}"
            ) from None

    def close(self) -> None:
        self.pool.close()

    # ---- listing ------------------------------------------------------------------------
    @staticmethod
    def _filter(filter: str) -> tuple[str, list[Any]]:
        if not filter:
            return "", []
        return " WHERE strpos(lower(r.name), lower(%s)) > 0", [filter]

    def run_names(self, *, filter: str = "") -> list[str]:
        where, args = self._filter(filter)
        with self.read("the run list") as conn:
            rows = conn.execute(
                f'SELECT r.name FROM deepscope.run r{where} ORDER BY r.name COLLATE "C"', args
            ).fetchall()
        return [r[0] for r in rows if is_valid_run_name(r[0])]

    def count_runs(self, *, filter: str = "") -> int:
        where, args = self._filter(filter)
        with self.read("the run list") as conn:
            row = conn.execute(f"SELECT count(*) FROM deepscope.run r{where}", args).fetchone()
        return int(row[0])

    def runs(self, *, offset: int = 0, limit: int = 500, filter: str = "") -> list[RunInfo]:
        """Runs sorted by name (one query with their sessions)."""
        where, args = self._filter(filter)
        offset, limit = max(0, int(offset)), max(0, int(limit))
        with self.read("the run list") as conn:
            rows = conn.execute(
                f"WITH page AS (SELECT r.id, r.name, r.created, r.config FROM deepscope.run r"
                f'{where} ORDER BY r.name COLLATE "C" OFFSET %s LIMIT %s)'
                f" SELECT p.name, p.created, p.config, {_SESSION_COLS} FROM page p"
                " LEFT JOIN deepscope.session s ON s.run_id = p.id"
                ' ORDER BY p.name COLLATE "C", s.id',
                [*args, offset, limit],
            ).fetchall()
        grouped: dict[str, tuple[tuple[Any, ...], list[tuple[Any, ...]]]] = {}
        for r in rows:
            entry = grouped.setdefault(r[0], (r[:3], []))
            if r[4] is not None:  # a session (LEFT JOIN: None when the run has none)
                entry[1].append(r[3:])
        now = time.time()
        return [self._info(head, sessions, now) for head, sessions in grouped.values()]

    def _info(self, head: tuple[Any, ...], sessions: list[tuple[Any, ...]], now: float) -> RunInfo:
        name = head[0]
        try:
            created, config = self._run_row(head)
            rows = session_rows(sessions)
        except BadValue as exc:
            return RunInfo(name=name, status="unreadable", created=0.0, heartbeat=0.0,
                           error=f"wrong value types in the database: {exc}")  # fmt: skip
        status = run_status(rows, now, self.stale_after)
        heartbeat = max((s[1] for s in rows), default=0.0)
        finished = None
        if status == "finished":
            finished = max((s[2] for s in rows if s[2] is not None), default=None)
        return RunInfo(
            name=name,
            status=status,
            created=float(created),
            heartbeat=float(heartbeat),
            config=config if isinstance(config, dict) else {"value": config},
            finished=finished,
        )

    def _run_row(self, head: tuple[Any, ...]) -> tuple[float, Any]:
        """`run_row`, with configs parsed once per distinct text (a listing of 10,000 runs
        otherwise spends most of its time parsing the same JSON again)."""
        key = head[2]
        cached = self._configs.get(key) if isinstance(key, str) else None
        if cached is None:
            created, config = run_row(head)
            if isinstance(key, str):
                if len(self._configs) >= CONFIG_CACHE:
                    self._configs.clear()
                self._configs[key] = config
            return created, config
        as_str(head[0], "run.name")
        return as_float(head[1], "run.created"), cached  # shared: RunInfo is read-only

    def run(self, name: str) -> PostgresRunReader:
        if not isinstance(name, str) or not is_valid_run_name(name):
            raise NotFoundError(f"no run named {name!r}")
        with self.read(name) as conn:
            row = conn.execute("SELECT id FROM deepscope.run WHERE name = %s", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no run named {name!r} in {mask(self.url)}")
        return PostgresRunReader(self, name, int(row[0]))

    def delete_run(self, name: str, *, force: bool = False) -> None:
        """Delete run `name` in one transaction; see
        `deepscope.store.postgres.admin.delete_postgres_run`."""
        from deepscope.store.postgres.admin import delete_postgres_run

        delete_postgres_run(self, name, force=force)

    def versions(self, names: Sequence[str]) -> dict[str, int | None]:
        out: dict[str, int | None] = dict.fromkeys(names)
        if not names:
            return out
        with self.read("run versions") as conn:
            for name, version in conn.execute(
                "SELECT name, version FROM deepscope.run WHERE name = ANY(%s)", (list(names),)
            ).fetchall():
                out[name] = int(version)
        return out


class PostgresRunReader:
    """Reads one run of a `PostgresStore`. Cheap to create; holds no connection."""

    def __init__(self, store: PostgresStore, name: str, run_id: int) -> None:
        self.store = store
        self.name = name
        self.run_id = run_id
        self.directory = store.root / name  # the local blob cache of this run

    def __repr__(self) -> str:
        return f"<PostgresRunReader {self.name!r} at {self.store.location}>"

    def _read(self) -> Any:
        return self.store.read(f"run '{self.name}'")

    def info(self) -> RunInfo:
        with self._read() as conn:
            head = conn.execute(
                "SELECT name, created, config FROM deepscope.run WHERE id = %s", (self.run_id,)
            ).fetchone()
            sessions = conn.execute(
                f"SELECT {_SESSION_COLS} FROM deepscope.session s WHERE s.run_id = %s"
                " ORDER BY s.id",
                (self.run_id,),
            ).fetchall()
        if head is None:
            raise NotFoundError(f"run '{self.name}' was deleted")
        return self.store._info(tuple(head), sessions, time.time())

    def tags(self) -> list[TagInfo]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT name, kind, count, first_step, last_step FROM deepscope.tag"
                ' WHERE run_id = %s AND count > 0 ORDER BY kind COLLATE "C", name COLLATE "C"',
                (self.run_id,),
            ).fetchall()
        return [tag_info(r) for r in rows]

    def _tag_id(self, conn: Any, tag: str, kind: str) -> int | None:
        row = conn.execute(
            "SELECT id FROM deepscope.tag WHERE run_id = %s AND name = %s AND kind = %s",
            (self.run_id, tag, kind),
        ).fetchone()
        return None if row is None else int(row[0])

    def scalars(
        self,
        tag: str,
        *,
        max_points: int = 2000,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[ScalarPoint]:
        with self._read() as conn:
            tid = self._tag_id(conn, tag, "scalar")
            if tid is None:
                return []
            rows = scalar_rows(conn, tid, max_points=int(max_points),
                               start_step=start_step, end_step=end_step)  # fmt: skip
        return [scalar_point(r) for r in rows]

    def histograms(self, tag: str, *, max_points: int = 100) -> list[HistogramPoint]:
        with self._read() as conn:
            tid = self._tag_id(conn, tag, "histogram")
            if tid is None:
                return []
            ids = histogram_ids(conn, tid, max_points=int(max_points))
            rows = conn.execute(
                "SELECT step, wall_time, edges, counts, count, n_nan, n_posinf, n_neginf,"
                " min, max, sum, sum_sq FROM deepscope.histogram WHERE id = ANY(%s)"
                " ORDER BY step, id",
                (ids,),
            ).fetchall()
        return [histogram_point(tuple(_bytes(r))) for r in rows]

    def blobs(
        self, kind: str, tag: str | None = None, *, limit: int | None = None
    ) -> list[BlobInfo]:
        sql = (
            f"SELECT {_BLOB_COLS} FROM deepscope.blob b JOIN deepscope.tag t ON t.id = b.tag_id"
            " WHERE b.run_id = %s AND b.kind = %s"
        )
        args: list[Any] = [self.run_id, kind]
        if tag is not None:
            sql += " AND t.name = %s"
            args.append(tag)
        if limit is None:
            sql += " ORDER BY b.step, b.id"
        else:
            sql = f"SELECT * FROM ({sql} ORDER BY b.step DESC, b.id DESC LIMIT %s) x ORDER BY 4, 1"
            args.append(max(0, int(limit)))
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [blob_info(r) for r in rows]

    def blob(self, blob_id: int) -> BlobInfo:
        with self._read() as conn:
            r = conn.execute(
                f"SELECT {_BLOB_COLS} FROM deepscope.blob b JOIN deepscope.tag t"
                " ON t.id = b.tag_id WHERE b.run_id = %s AND b.id = %s",
                (self.run_id, int(blob_id)),
            ).fetchone()
        if r is None:
            raise NotFoundError(f"run '{self.name}' has no blob {blob_id}")
        return blob_info(r)

    def _confined(self, blob: BlobInfo) -> Path:
        rel = str(blob.path)
        parts = rel.split("/")
        bad = (
            not rel or "\x00" in rel or "\\" in rel or os.path.isabs(rel)
            or any(p in ("", ".", "..") for p in parts)
        )  # fmt: skip
        if bad:
            raise NotFoundError(f"blob path {rel!r} is not inside run '{self.name}'")
        return self.directory.joinpath(*parts)

    def read_blob(self, blob: BlobInfo, *, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        self._confined(blob)
        with self._read() as conn:
            row = conn.execute(
                "SELECT length(data), CASE WHEN length(data) <= %s THEN data END"
                " FROM deepscope.blob_data WHERE run_id = %s AND path = %s",
                (max_bytes, self.run_id, blob.path),
            ).fetchone()
        if row is None:
            raise NotFoundError(f"blob {blob.path!r} of run '{self.name}' is missing")
        if row[1] is None:
            raise StoreError(f"blob {blob.path} is larger than {max_bytes} bytes")
        return bytes(row[1])

    def blob_path(self, blob: BlobInfo) -> Path:
        """The blob's file in the local cache, fetched from the database when missing."""
        path = self._confined(blob)
        if not path.is_file():
            data = self.read_blob(blob, max_bytes=1 << 30)
            self.directory.mkdir(parents=True, exist_ok=True)
            write_blob(self.directory, blob.path, data)
        resolved = path.resolve()
        if not resolved.is_relative_to(self.directory.resolve()):
            raise NotFoundError(f"blob path {blob.path!r} is not inside run '{self.name}'")
        return resolved

    def events(self, *, limit: int = 1000) -> list[EventInfo]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, step, wall_time, severity, kind, layer, message FROM deepscope.event"
                " WHERE run_id = %s ORDER BY id DESC LIMIT %s",
                (self.run_id, max(0, int(limit))),
            ).fetchall()
        rows.reverse()
        return [event_info(r) for r in rows]

    def version(self) -> int:
        with self._read() as conn:
            row = conn.execute(
                "SELECT version FROM deepscope.run WHERE id = %s", (self.run_id,)
            ).fetchone()
        if row is None:
            raise NotFoundError(f"run '{self.name}' was deleted")
        return int(row[0])


def _bytes(r: tuple[Any, ...]) -> list[Any]:
    out = list(r)
    out[2], out[3] = bytes(out[2]), bytes(out[3])
    return out
