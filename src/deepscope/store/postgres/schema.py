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

`ensure_schema` creates what is missing under an advisory lock (many ranks may start at once).
"""

from __future__ import annotations

from typing import Any

from deepscope.errors import StoreError

SCHEMA_VERSION = 2  # 2: scalar_level keeps wall times
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

_READY: set[str] = set()  # databases (masked URL) whose schema this process has ensured


def ensure_schema(conn: Any, key: str) -> None:
    """Create the tables if missing (once per process and database `key`).

    Many writers may start at once on an empty database: the first takes a session-level
    advisory lock and creates everything in one transaction; the others wait for the lock,
    then look again in a transaction begun after it (a catalog query, so they see the
    committed tables) and skip the DDL, whose locks would deadlock with running writers.
    """
    if key in _READY:
        return
    version = _version(conn)
    conn.commit()
    if version is None:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.commit()
        try:
            version = _version(conn)  # a fresh transaction: sees what the lock holder made
            conn.commit()
            if version is None:
                with conn.transaction():
                    for statement in _statements(DDL):
                        conn.execute(statement)
                version = str(SCHEMA_VERSION)
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()
    if version != str(SCHEMA_VERSION):
        raise StoreError(
            f"the database holds deepscope store schema {version}, this deepscope uses "
            f"{SCHEMA_VERSION} (a development version of the PostgreSQL store): copy the runs "
            "with `deepscope migrate` from their log directories into a new database"
        )
    _READY.add(key)


def _version(conn: Any) -> str | None:
    """The schema version in the database, None when it has no deepscope tables yet."""
    exists = conn.execute(
        "SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
        " ON n.oid = c.relnamespace WHERE n.nspname = 'deepscope' AND c.relname = 'meta'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute("SELECT value FROM deepscope.meta WHERE key = 'schema_version'").fetchone()
    return None if row is None else str(row[0])


def _statements(script: str) -> list[str]:
    out, buf = [], []
    for line in script.splitlines():
        buf.append(line)
        if line.rstrip().endswith(";"):
            out.append("\n".join(buf).strip())
            buf = []
    return [s for s in out if s]
