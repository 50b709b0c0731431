"""Read side of the SQLite run store (implements `deepscope.store.protocol`).

Every call opens a read-only connection (``mode=ro``), reads in one transaction (one
snapshot: a batch is seen whole or not at all) and closes it, so readers never hold a
snapshot between calls and never block the writer or its checkpoints.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from deepscope.errors import NotFoundError, StoreError
from deepscope.store import jsonenc
from deepscope.store.downsample import histogram_ids, scalar_rows
from deepscope.store.protocol import (
    BlobInfo,
    EventInfo,
    HistogramPoint,
    RunInfo,
    RunStatus,
    ScalarPoint,
    TagInfo,
)
from deepscope.store.schema import (
    DB_NAME,
    KIND_NAN,
    KIND_NEGINF,
    KIND_NEGZERO,
    KIND_POSINF,
    connect_reader,
    is_valid_run_name,
)

DEFAULT_STALE_AFTER = 30.0  # seconds without a heartbeat before a running run reads "interrupted"
_SPECIAL = {KIND_NAN: math.nan, KIND_POSINF: math.inf, KIND_NEGINF: -math.inf, KIND_NEGZERO: -0.0}


def decode_value(value: float | None, kind: int) -> float:
    """The float a (value, kind) pair stands for."""
    if kind in _SPECIAL:
        return _SPECIAL[kind]
    return float(value) if value is not None else math.nan


def run_status(sessions: list[tuple[Any, ...]], now: float, stale_after: float) -> RunStatus:
    """From rows ``(parent, heartbeat, ended, state)`` of the session table.

    running: some session is live (not ended, heartbeat fresh); interrupted: a top-level
    session ended without finishing (SIGTERM, exception) or went silent (kill -9);
    finished otherwise. Forked children (DataLoader workers) that vanish do not count.
    """
    if any(ended is None and now - hb <= stale_after for _, hb, ended, _s in sessions):
        return "running"
    roots = [s for s in sessions if s[0] is None] or sessions
    if not roots:
        return "interrupted"
    if any(ended is None or state == "interrupted" for _, _hb, ended, state in roots):
        return "interrupted"
    return "finished"


class SqliteRunReader:
    """Reads one run. Cheap to create; holds no connection between calls."""

    def __init__(self, name: str, directory: Path, *, stale_after: float = DEFAULT_STALE_AFTER):
        self.name = name
        self.directory = directory
        self.db_path = directory / DB_NAME
        self.stale_after = stale_after

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        if not self.db_path.is_file():
            raise NotFoundError(f"run '{self.name}' has no {DB_NAME} (deleted?)")
        conn = connect_reader(self.db_path)
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                raise NotFoundError(f"run '{self.name}' is not initialised yet") from exc
            raise StoreError(f"cannot read run '{self.name}': {exc}") from exc
        finally:
            conn.close()

    def info(self) -> RunInfo:
        with self._read() as conn:
            row = conn.execute("SELECT name, created, config FROM run WHERE id = 1").fetchone()
            sessions = conn.execute(
                "SELECT parent, heartbeat, ended, state FROM session"
            ).fetchall()
        now = time.time()
        status = run_status(sessions, now, self.stale_after)
        heartbeat = max((s[1] for s in sessions), default=0.0)
        if row is None:
            created, config = heartbeat or self.db_path.stat().st_mtime, {}
        else:
            created = row[1]
            try:
                config = jsonenc.loads(row[2])
            except ValueError:
                config = {}
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
        return [
            TagInfo(tag=r[0], kind=r[1], count=r[2], first_step=r[3], last_step=r[4]) for r in rows
        ]

    @staticmethod
    def _tag_id(conn: sqlite3.Connection, tag: str, kind: str) -> int | None:
        row = conn.execute("SELECT id FROM tag WHERE name = ? AND kind = ?", (tag, kind)).fetchone()
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
            rows = scalar_rows(
                conn, tid, max_points=max_points, start_step=start_step, end_step=end_step
            )
        return [
            ScalarPoint(step=r[1], wall_time=r[2], value=decode_value(r[3], r[4])) for r in rows
        ]

    def histograms(self, tag: str, *, max_points: int = 100) -> list[HistogramPoint]:
        import numpy as np

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
        rows.sort(key=lambda r: r[0])
        nan = math.nan
        return [
            HistogramPoint(
                step=r[0],
                wall_time=r[1],
                edges=np.frombuffer(r[2], dtype="<f8").tolist(),
                counts=np.frombuffer(r[3], dtype="<i8").tolist(),
                count=r[4],
                n_nan=r[5],
                n_posinf=r[6],
                n_neginf=r[7],
                min=r[8],
                max=r[9],
                sum=nan if r[10] is None else r[10],
                sum_sq=nan if r[11] is None else r[11],
            )
            for r in rows
        ]

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
            rows = conn.execute(sql, args).fetchall()
        return [
            BlobInfo(
                id=r[0], kind=r[1], tag=r[2], step=r[3], wall_time=r[4], path=r[5], meta=_meta(r[6])
            )
            for r in rows
        ]

    def blob(self, blob_id: int) -> BlobInfo:
        """One blob by id; `NotFoundError` if there is none."""
        with self._read() as conn:
            r = conn.execute(
                "SELECT b.id, b.kind, t.name, b.step, b.wall_time, b.path, b.meta "
                "FROM blob b JOIN tag t ON t.id = b.tag_id WHERE b.id = ?",
                (int(blob_id),),
            ).fetchone()
        if r is None:
            raise NotFoundError(f"run '{self.name}' has no blob {blob_id}")
        return BlobInfo(
            id=r[0], kind=r[1], tag=r[2], step=r[3], wall_time=r[4], path=r[5], meta=_meta(r[6])
        )

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
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, step, wall_time, severity, kind, layer, message FROM event "
                "ORDER BY id DESC LIMIT ?",
                (max(0, int(limit)),),
            ).fetchall()
        rows.reverse()
        return [
            EventInfo(
                id=r[0],
                step=r[1],
                wall_time=r[2],
                severity=r[3],
                kind=r[4],
                layer=r[5],
                message=r[6],
            )
            for r in rows
        ]

    def version(self) -> int:
        with self._read() as conn:
            row = conn.execute("SELECT version FROM counter WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])


def _meta(text: str) -> dict[str, Any]:
    try:
        value = jsonenc.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class SqliteStore:
    """A log directory of SQLite runs (``LOGDIR/<run>/run.db``)."""

    def __init__(self, root: str | os.PathLike[str], *, stale_after: float = DEFAULT_STALE_AFTER):
        self.root = Path(root)
        self.stale_after = stale_after
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

    def runs(self, *, offset: int = 0, limit: int = 500, filter: str = "") -> list[RunInfo]:
        names = self.run_names(filter=filter)
        offset = max(0, int(offset))
        limit = max(0, int(limit))
        out = []
        for name in names[offset : offset + limit]:
            try:
                out.append(self.run(name).info())
            except (NotFoundError, StoreError):
                continue  # deleted or unreadable meanwhile: skip it in the listing
        return out

    def run(self, name: str) -> SqliteRunReader:
        if not isinstance(name, str) or not is_valid_run_name(name):
            raise NotFoundError(f"no run named {name!r}")
        directory = self.root / name
        root = self.root.resolve()
        resolved = directory.resolve()
        if resolved.parent != root or not (resolved / DB_NAME).is_file():
            raise NotFoundError(f"no run named {name!r} in {self.root}")
        return SqliteRunReader(name, directory, stale_after=self.stale_after)


def open_store(
    logdir: str | os.PathLike[str], *, stale_after: float = DEFAULT_STALE_AFTER
) -> SqliteStore:
    """Open a log directory for reading (see `deepscope.store.open`)."""
    return SqliteStore(logdir, stale_after=stale_after)
