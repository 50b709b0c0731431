"""SQLite schema, connection settings and filesystem checks for the run store.

One database per run (``LOGDIR/<run>/run.db``), WAL mode. Every connection gets
``busy_timeout`` >= 5 s; every write transaction is ``BEGIN IMMEDIATE`` (a deferred
transaction that reads first and then writes fails at once with ``SQLITE_BUSY_SNAPSHOT``
whatever the busy timeout, docs/threats.md S4). The schema is created exactly once, under
``BEGIN IMMEDIATE``, keyed by ``PRAGMA user_version``, so processes that start together
on a fresh run never race (S5).
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deepscope.errors import StoreError
from deepscope.store.levels import LEVEL_SCHEMA, build

SCHEMA_VERSION = 3  # 2: scalar_level (the min/max pyramid, store/levels.py); 3: session.proc_id
# 2 -> 3: who wrote a session, exactly enough to tell at once that it died (store/liveness.py).
# Added with ALTER TABLE on fresh stores too, so every store of a version has the same SQL
# (store/checks.py compares it).
V3_SCHEMA = "ALTER TABLE session ADD COLUMN proc_id TEXT;"
BUSY_TIMEOUT_MS = 10_000
JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
DB_NAME = "run.db"
BLOB_DIR = "blobs"

# scalar.kind: how a value is stored. SQLite turns NaN into NULL and -0.0 into 0, so the
# class lives in its own column and `value` holds only finite numbers (NULL otherwise).
KIND_FINITE, KIND_NAN, KIND_POSINF, KIND_NEGINF, KIND_NEGZERO = 0, 1, 2, 3, 4

SCHEMA = """
CREATE TABLE run (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    created REAL NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',
    schema_version INTEGER NOT NULL
);
CREATE TABLE session (            -- one row per writing process (heartbeat, end state)
    id INTEGER PRIMARY KEY,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    parent INTEGER,               -- the session this one was forked from (DataLoader workers)
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    ended REAL,
    state TEXT NOT NULL DEFAULT 'running'   -- running | finished | interrupted
);
CREATE TABLE counter (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL);
CREATE TABLE migration (version INTEGER NOT NULL, applied REAL NOT NULL, pid INTEGER NOT NULL);
CREATE TABLE tag (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,           -- scalar | histogram | image | text | graph | ...
    count INTEGER NOT NULL DEFAULT 0,
    first_step INTEGER,
    last_step INTEGER,
    UNIQUE (name, kind)
);
CREATE TABLE scalar (
    id INTEGER PRIMARY KEY,
    tag_id INTEGER NOT NULL,
    step INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    value REAL,                   -- finite values only; NULL for NaN/+Inf/-Inf
    kind INTEGER NOT NULL         -- 0 finite, 1 nan, 2 +inf, 3 -inf, 4 -0.0
);
CREATE INDEX scalar_tag_step ON scalar (tag_id, step);
CREATE INDEX scalar_nonfinite ON scalar (tag_id, step) WHERE kind BETWEEN 1 AND 3;
CREATE TABLE histogram (
    id INTEGER PRIMARY KEY,
    tag_id INTEGER NOT NULL,
    step INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    edges BLOB NOT NULL,          -- little-endian float64[bins + 1]
    counts BLOB NOT NULL,         -- little-endian int64[bins]
    count INTEGER NOT NULL,
    n_nan INTEGER NOT NULL,
    n_posinf INTEGER NOT NULL,
    n_neginf INTEGER NOT NULL,
    min REAL,
    max REAL,
    sum REAL,                     -- NULL means NaN
    sum_sq REAL
);
CREATE INDEX histogram_tag_step ON histogram (tag_id, step);
CREATE TABLE blob (
    id INTEGER PRIMARY KEY,
    tag_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    path TEXT NOT NULL,           -- relative to the run directory
    meta TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX blob_tag_step ON blob (tag_id, step);
CREATE INDEX blob_kind ON blob (kind, tag_id, step);
CREATE TABLE event (
    id INTEGER PRIMARY KEY,
    step INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    layer TEXT,
    message TEXT NOT NULL
);
CREATE INDEX event_step ON event (step);
INSERT INTO counter (id, version) VALUES (1, 0);
"""

NETWORK_FS = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "afs", "9p",
        "ceph", "glusterfs", "lustre", "gpfs", "davfs", "sshfs", "beegfs", "fuse",
    }
)  # fmt: skip
ALLOW_NETWORK_FS_ENV = "DEEPSCOPE_ALLOW_NETWORK_FS"

_NAME_OK = re.compile(r"[^A-Za-z0-9._=+-]+")
MAX_NAME = 128


def sanitize_run_name(name: str) -> str:
    """A run name that is safe as one directory name: ``[A-Za-z0-9._=+-]``, ≤ 128 chars.

    Other characters become ``-``; leading dots are dropped. Raises `ValueError` if nothing
    usable is left.
    """
    if not isinstance(name, str):
        raise TypeError(f"run name must be a string, not {type(name).__name__}")
    clean = _NAME_OK.sub("-", name.strip()).lstrip(".")[:MAX_NAME].strip("-") or ""
    if not clean or clean in {".", ".."}:
        raise ValueError(f"run name {name!r} has no usable characters (use letters, digits, ._-)")
    return clean


def is_valid_run_name(name: str) -> bool:
    """True when `name` is exactly what `sanitize_run_name` would keep."""
    try:
        return sanitize_run_name(name) == name
    except (TypeError, ValueError):
        return False


def generate_run_name() -> str:
    """``yyyymmdd-hhmmss-<8 random hex>``: sorts by time, never collides within a second."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(4)


def filesystem_type(path: Path, mounts: str | None = None) -> tuple[str, str]:
    """(fs type, mount point) of the mount holding `path`, from ``/proc/mounts``
    (or the text `mounts` in that format). ``("", "")`` where that cannot be told."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return "", ""
    text = mounts
    target = str(path.resolve())
    best, best_type = "", ""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, best_type = mount, parts[2]
    return best_type, best


def is_network_fs(fs_type: str) -> bool:
    base = fs_type.lower()
    return base in NETWORK_FS or base.startswith(("fuse.", "nfs", "smb", "cifs"))


def check_local_filesystem(path: Path, *, allow_network_fs: bool = False) -> None:
    """Raise `StoreError` when `path` is on a network or FUSE filesystem (WAL is unsafe there)."""
    if allow_network_fs or os.environ.get(ALLOW_NETWORK_FS_ENV, "") not in ("", "0"):
        return
    fs_type, mount = filesystem_type(path)
    if is_network_fs(fs_type):
        raise StoreError(
            f"the log directory {path} is on a network filesystem ({fs_type} mounted at "
            f"{mount}). SQLite's write-ahead log does not work over network filesystems and "
            "runs could be corrupted. Put the logdir on a local disk (copy finished runs to "
            "the share afterwards: a run is one folder). If you know this mount is safe, "
            f"pass allow_network_fs=True or set {ALLOW_NETWORK_FS_ENV}=1."
        )


def configure(conn: sqlite3.Connection) -> None:
    """Settings every connection gets (readers included)."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def connect_writer(db_path: Path, *, durability: str = "normal") -> sqlite3.Connection:
    """Open (creating if needed) a run database for writing and make sure the schema exists."""
    conn = sqlite3.connect(
        str(db_path),
        timeout=BUSY_TIMEOUT_MS / 1000,
        isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
        check_same_thread=False,
    )
    try:
        configure(conn)
        _retry_locked(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"could not put {db_path} in WAL mode (got {mode!r})")
        sync = "FULL" if durability == "full" else "NORMAL"
        conn.execute(f"PRAGMA synchronous = {sync}")
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _retry_locked(fn: object, attempts: int = 50) -> None:
    # Switching a fresh file to WAL takes an exclusive lock; a few processes doing it at once
    # may see SQLITE_BUSY before the busy handler applies.
    for i in range(attempts):
        try:
            fn()  # type: ignore[operator]
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or i == attempts - 1:
                raise
            time.sleep(0.02 + 0.01 * i)


def migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema once, under ``BEGIN IMMEDIATE`` (readers never migrate:
    a reader of an older store falls back to what that store holds).

    Refuses (`StoreError`, never a hang) a database deepscope did not write: views,
    triggers, virtual tables or altered tables (`deepscope.store.checks.verify_schema`).
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
        _verify_for_writer(conn, allow_empty=False)
        return
    with immediate(conn):
        version = _verify_for_writer(conn, allow_empty=True)
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"this run was written by a newer deepscope (schema {version} > "
                f"{SCHEMA_VERSION}); upgrade deepscope to read or write it"
            )
        create_or_upgrade(conn, version, SCHEMA_VERSION)
        conn.execute(
            "INSERT INTO migration (version, applied, pid) VALUES (?, ?, ?)",
            (SCHEMA_VERSION, time.time(), os.getpid()),
        )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _verify_for_writer(conn: sqlite3.Connection, *, allow_empty: bool) -> int:
    from deepscope.store.checks import SchemaProblem, verify_schema

    try:
        return verify_schema(conn, allow_empty=allow_empty)
    except SchemaProblem as exc:
        name = conn.execute("PRAGMA database_list").fetchone()[2]
        raise StoreError(
            f"refusing to write to {name}: {exc}. It was not written by deepscope (or was "
            "altered since); log to a new run name or move this run.db away."
        ) from None


def create_or_upgrade(conn: sqlite3.Connection, version: int, target: int) -> None:
    """Bring the schema from `version` to `target` (inside the caller's transaction)."""
    if version == 0 and target >= 1:  # a fresh store
        for statement in _statements(SCHEMA):
            conn.execute(statement)
        version = 1
    if version == 1 and target >= 2:  # 1 -> 2: the pyramid, built from the rows already there
        for statement in _statements(LEVEL_SCHEMA):
            conn.execute(statement)
        build(conn)
        version = 2
    if version == 2 and target >= 3:  # 2 -> 3: the writer's process identity
        for statement in _statements(V3_SCHEMA):
            conn.execute(statement)


def _statements(script: str) -> Iterator[str]:
    # executescript() would COMMIT our transaction first; run the statements one by one.
    buf = ""
    for line in script.splitlines():
        line = line.split("--", 1)[0]
        buf += line + "\n"
        if sqlite3.complete_statement(buf):
            if buf.strip():
                yield buf.strip()
            buf = ""


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction: ``BEGIN IMMEDIATE`` … ``COMMIT`` (``ROLLBACK`` on error)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass
        raise
    conn.execute("COMMIT")


def connect_reader(db_path: Path, *, deadline: float | None = None) -> sqlite3.Connection:
    """A read-only connection that never blocks the writer.

    Tries ``mode=ro``; on a directory where ``run.db-shm`` cannot be created (a read-only
    copy) and no write-ahead log is pending, falls back to ``immutable=1``. Otherwise raises
    a clear `StoreError` (never hangs). With `deadline` (seconds), every statement of the
    connection, opening included, is interrupted once that time has passed
    (`deepscope.store.checks.set_deadline`).
    """
    uri = db_path.resolve().as_uri()

    def connect(query: str) -> sqlite3.Connection:
        conn = sqlite3.connect(
            f"{uri}?{query}",
            uri=True,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            configure(conn)
            if deadline is not None:
                from deepscope.store.checks import set_deadline

                set_deadline(conn, deadline)
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except BaseException:
            conn.close()
            raise
        return conn

    try:
        return connect("mode=ro")
    except sqlite3.OperationalError as exc:
        first = exc
    wal = db_path.with_name(db_path.name + "-wal")
    if not os.access(db_path.parent, os.W_OK) or "readonly" in str(first) or "open" in str(first):
        if not wal.exists() or wal.stat().st_size == 0:
            try:
                return connect("mode=ro&immutable=1")
            except sqlite3.OperationalError:
                pass
    if "interrupt" in str(first):
        raise first
    raise StoreError(
        f"cannot read {db_path}: {first}. A run directory must be readable, and writable "
        "while its write-ahead log (run.db-wal) is not empty (SQLite creates run.db-shm "
        "next to it). Make the directory writable or copy the run to a writable place."
    ) from first
