"""The PostgreSQL schema of the run store: every run of a database in one set of tables.

Tables live in the schema ``deepscope`` (so the database may hold other things). They mirror
the SQLite store (`deepscope.store.schema`) with a ``run_id`` column where SQLite has one
file per run, plus:

- ``batch``: the id of every committed batch. A writer commits a batch with
  ``INSERT INTO batch … ON CONFLICT DO NOTHING`` first; a replay of a batch already committed
  (the acknowledgement was lost when the connection dropped, or a spill file is replayed
  twice) inserts nothing and is skipped, so nothing is ever duplicated.
- ``blob_data``: blob bytes (``bytea``), keyed by run and content-addressed path: ranks on
  several hosts need no shared filesystem (docs/design-notes.md, "PostgreSQL store").
- ``scalar.id`` is assigned by the writer from the sequence ``scalar_block`` (which steps by
  2**24: one ``nextval`` reserves a block of ids for one batch), so the min/max pyramid
  (``scalar_level``, as `deepscope.store.levels`, plus the step of each referenced row) is
  folded from the batch in memory, and every read is an index range scan.

Schema versions: ``meta.schema_version`` holds the version a database is at. `DDL` creates
version `BASE_VERSION`; `UPGRADES` are the ordered steps after it (step *i* brings version
``BASE_VERSION + i`` to the next), applied to a fresh database and to an older one alike,
so both end with the same tables. `ensure_schema` creates or upgrades under an advisory lock
(many ranks may start at once) in one transaction, and refuses a database of a newer
deepscope (`NewerSchemaError`: upgrade deepscope) or of the development schema 1.
"""

from __future__ import annotations

from typing import Any

from deepscope.errors import StoreError

BASE_VERSION = 2  # what `DDL` creates (2: scalar_level keeps wall times)
ID_BLOCK_BITS = 24  # ids of one scalar block: nextval(scalar_block) + [0, 2**24)
_LOCK_KEY = 0x6465_6570_7363  # pg_advisory_xact_lock key ("deepsc")

DDL = """
CREATE SCHEMA IF NOT EXISTS deepscope;
CREATE TABLE IF NOT EXISTS deepscope.meta (
    key text PRIMARY KEY,
    value text NOT NULL
);
CREATE TABLE IF NOT EXISTS deepscope.run (
    id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    created double precision NOT NULL,
    config text NOT NULL DEFAULT '{}',
    version bigint NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS deepscope.session (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES deepscope.run (id) ON DELETE CASCADE,
    pid integer NOT NULL,
    host text NOT NULL,
    parent bigint,
    started double precision NOT NULL,
    heartbeat double precision NOT NULL,
    ended double precision,
    state text NOT NULL DEFAULT 'running',
    proc_id text
);
CREATE INDEX IF NOT EXISTS session_run ON deepscope.session (run_id);
CREATE TABLE IF NOT EXISTS deepscope.batch (
    id uuid PRIMARY KEY,
    run_id bigint NOT NULL,
    session_id bigint,
    committed double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS deepscope.tag (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES deepscope.run (id) ON DELETE CASCADE,
    name text NOT NULL,
    kind text NOT NULL,
    count bigint NOT NULL DEFAULT 0,
    first_step bigint,
    last_step bigint,
    UNIQUE (run_id, name, kind)
);
CREATE SEQUENCE IF NOT EXISTS deepscope.scalar_block INCREMENT BY 16777216 START WITH 16777216;
CREATE TABLE IF NOT EXISTS deepscope.scalar (
    tag_id bigint NOT NULL,
    step bigint NOT NULL,
    id bigint NOT NULL,
    wall_time double precision NOT NULL,
    value double precision,          -- finite values only; NULL for NaN/+Inf/-Inf
    kind smallint NOT NULL,          -- 0 finite, 1 nan, 2 +inf, 3 -inf, 4 -0.0
    PRIMARY KEY (tag_id, step, id)
);
CREATE INDEX IF NOT EXISTS scalar_nonfinite ON deepscope.scalar (tag_id, step, id)
    WHERE kind BETWEEN 1 AND 3;
CREATE TABLE IF NOT EXISTS deepscope.scalar_level (
    tag_id bigint NOT NULL,
    level smallint NOT NULL,
    bucket bigint NOT NULL,
    n bigint NOT NULL,
    min_value double precision, min_id bigint, min_step bigint,
    max_value double precision, max_id bigint, max_step bigint,
    nan_id bigint, nan_step bigint,
    pinf_id bigint, pinf_step bigint,
    ninf_id bigint, ninf_step bigint,
    min_wall double precision, max_wall double precision, nan_wall double precision,
    pinf_wall double precision, ninf_wall double precision,
    PRIMARY KEY (tag_id, level, bucket)
);
CREATE TABLE IF NOT EXISTS deepscope.histogram (
    id bigserial PRIMARY KEY,
    tag_id bigint NOT NULL,
    step bigint NOT NULL,
    wall_time double precision NOT NULL,
    edges bytea NOT NULL,
    counts bytea NOT NULL,
    count bigint NOT NULL,
    n_nan bigint NOT NULL,
    n_posinf bigint NOT NULL,
    n_neginf bigint NOT NULL,
    min double precision,
    max double precision,
    sum double precision,
    sum_sq double precision
);
CREATE INDEX IF NOT EXISTS histogram_tag_step ON deepscope.histogram (tag_id, step, id);
CREATE TABLE IF NOT EXISTS deepscope.blob (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL,
    tag_id bigint NOT NULL,
    kind text NOT NULL,
    step bigint NOT NULL,
    wall_time double precision NOT NULL,
    path text NOT NULL,
    meta text NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS blob_run_kind ON deepscope.blob (run_id, kind, step, id);
CREATE INDEX IF NOT EXISTS blob_tag ON deepscope.blob (tag_id, step, id);
CREATE TABLE IF NOT EXISTS deepscope.blob_data (
    run_id bigint NOT NULL,
    path text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (run_id, path)
);
CREATE TABLE IF NOT EXISTS deepscope.event (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL,
    step bigint NOT NULL,
    wall_time double precision NOT NULL,
    severity text NOT NULL,
    kind text NOT NULL,
    layer text,
    message text NOT NULL
);
CREATE INDEX IF NOT EXISTS event_run ON deepscope.event (run_id, id);
INSERT INTO deepscope.meta (key, value) VALUES ('schema_version', '2') ON CONFLICT DO NOTHING;
"""

# Upgrade steps, in order: UPGRADES[i] takes a database from BASE_VERSION + i to the next.
# Each statement is idempotent (IF NOT EXISTS), so a step half-applied by hand is finished.
UPGRADES: tuple[tuple[str, ...], ...] = (
    # 2 -> 3: batch rows are found by run (deleting a run, `deepscope rm`, is an index scan)
    ("CREATE INDEX IF NOT EXISTS batch_run ON deepscope.batch (run_id)",),
)
SCHEMA_VERSION = BASE_VERSION + len(UPGRADES)


class NewerSchemaError(StoreError):
    """The database was written by a newer deepscope (its schema version is higher)."""


_READY: set[str] = set()  # databases (masked URL) whose schema this process has ensured


def ensure_schema(conn: Any, key: str) -> None:
    """Create the tables if missing, or upgrade an older database in place (once per
    process and database `key`).

    Many writers may start at once: the first takes a session-level advisory lock and
    creates or upgrades everything in one transaction; the others wait for the lock, then
    look again in a transaction begun after it (a catalog query, so they see the committed
    tables) and skip the DDL, whose locks would deadlock with running writers. A database
    already at `SCHEMA_VERSION` takes no lock at all.
    """
    if key in _READY:
        return
    version = _version(conn)
    conn.commit()
    _check_version(version)
    if version != SCHEMA_VERSION:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.commit()
        try:
            version = _version(conn)  # a fresh transaction: sees what the lock holder made
            conn.commit()
            _check_version(version)
            if version != SCHEMA_VERSION:
                with conn.transaction():
                    upgrade(conn, version)
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()
    _READY.add(key)


def upgrade(conn: Any, version: int | None) -> None:
    """Bring the schema from `version` (None: no deepscope tables) to `SCHEMA_VERSION`,
    inside the caller's transaction (the caller holds the advisory lock)."""
    if version is None:
        for statement in _statements(DDL):
            conn.execute(statement)
        version = BASE_VERSION
    for step in UPGRADES[version - BASE_VERSION :]:
        for statement in step:
            conn.execute(statement)
    conn.execute(
        "UPDATE deepscope.meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
    )


def _check_version(version: int | None) -> None:
    if version is None or BASE_VERSION <= version <= SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(
            f"the database was written by a newer deepscope (store schema {version}; this "
            f"deepscope knows up to {SCHEMA_VERSION}): upgrade deepscope "
            "(pip install -U 'deepscope[postgres]') on every machine that uses this database"
        )
    raise StoreError(
        f"the database holds deepscope store schema {version}, a development version of the "
        f"PostgreSQL store that cannot be upgraded (this deepscope uses {SCHEMA_VERSION}): "
        "copy the runs with `deepscope migrate` from their log directories into a new database"
    )


def schema_version(conn: Any) -> int | None:
    """The schema version of the database (None when it has no deepscope tables yet)."""
    return _version(conn)


def _version(conn: Any) -> int | None:
    """The schema version in the database, None when it has no deepscope tables yet."""
    exists = conn.execute(
        "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = 'deepscope' AND c.relname = 'meta'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute("SELECT value FROM deepscope.meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        return None
    try:
        return int(str(row[0]))
    except ValueError:
        raise StoreError(
            f"the database's deepscope schema version {str(row[0])[:40]!r} is not a number "
            "(the deepscope.meta table was altered): restore it or use a new database"
        ) from None


def _statements(script: str) -> list[str]:
    out, buf = [], []
    for line in script.splitlines():
        buf.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(buf).strip())
            buf = []
    return [s for s in out if s]
