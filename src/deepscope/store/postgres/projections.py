"""The Projector's cache in a PostgreSQL store: computed projections, one row per run and key.

A SQLite log directory caches a projection as a file beside the run's blobs
(`deepscope.server.projector_worker.cache_path`); a database store has no such folder that
every server sees, so the projector worker writes its result into the table
``deepscope.projection`` (``run_id`` references ``deepscope.run`` with ``ON DELETE CASCADE``:
deleting a run deletes its projections). The table is not part of the run store's schema
(`deepscope.store.postgres.schema`): it is created on first use, under its own advisory lock,
so a database made before it existed needs no migration, and a reader that finds no table
finds no cached projection. The row is written on the worker's own connection, never
through a `RunWriter`: computing a projection opens no session on the run and leaves its
``version`` (what the dashboard polls) alone. docs/design-notes.md, "Projector on PostgreSQL".

Imports the standard library only (psycopg when used). Every error is a `StoreError` whose
text went through `deepscope.store.postgres.url.scrub` (no password).
"""

from __future__ import annotations

import json
import time
from typing import Any

from deepscope.errors import StoreError
from deepscope.store.postgres.url import connect, mask, scrub

__all__ = ["TABLE", "cached_projection", "save_projection"]

TABLE = "deepscope.projection"
_LOCK_KEY = 0x6465_6570_7072  # pg_advisory_xact_lock key ("deeppr"), not the schema's
_DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    run_id bigint NOT NULL REFERENCES deepscope.run (id) ON DELETE CASCADE,
    key text NOT NULL,
    created double precision NOT NULL,
    meta text NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (run_id, key)
)"""
_EXISTS = f"SELECT to_regclass('{TABLE}') IS NOT NULL"


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not key.isalnum() or len(key) > 128:
        raise ValueError(f"bad projection key {str(key)[:80]!r}")


def save_projection(url: str, run: str, key: str, meta: dict[str, Any], data: bytes) -> bool:
    """Store projection `key` of run `run` (its float32 envelope `data` and `meta`, which
    holds ``dropped``); whether a row was written (False: the run is gone).

    One short connection (``application_name`` ``deepscope-projector``), autocommit: the
    table is created first if missing (an advisory lock makes concurrent first writers
    wait rather than collide), then the row is upserted (a recomputation replaces it)."""
    _check_key(key)
    import psycopg

    conn = connect(url, application="deepscope-projector", autocommit=True)
    try:
        if not conn.execute(_EXISTS).fetchone()[0]:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                conn.execute(_DDL)
        cur = conn.execute(
            f"INSERT INTO {TABLE} (run_id, key, created, meta, data)"
            " SELECT id, %s, %s, %s, %s FROM deepscope.run WHERE name = %s"
            " ON CONFLICT (run_id, key) DO UPDATE"
            " SET created = EXCLUDED.created, meta = EXCLUDED.meta, data = EXCLUDED.data",
            (key, time.time(), json.dumps(meta), data, run),
        )
        return bool(cur.rowcount == 1)
    except psycopg.Error as exc:
        raise StoreError(
            f"caching projection {key[:40]} of run '{run}' in {mask(url)} failed: "
            f"{scrub(str(exc), url)}"
        ) from None
    finally:
        conn.close()


def cached_projection(store: Any, run: str, key: str) -> tuple[bytes, int] | None:
    """The cached projection `key` of run `run` in `store` (a
    `deepscope.store.postgres.reader.PostgresStore`: one read on its pool) as its envelope
    bytes and dropped-row count; None when there is none (or no table yet)."""
    from deepscope.store.postgres.reader import PostgresStore

    if not isinstance(store, PostgresStore):
        raise TypeError(f"not a PostgreSQL store: {type(store).__name__}")
    _check_key(key)
    with store.read(f"projection {key[:40]} of run '{run}'") as conn:
        if not conn.execute(_EXISTS).fetchone()[0]:
            return None
        row = conn.execute(
            f"SELECT p.meta, p.data FROM {TABLE} p JOIN deepscope.run r ON r.id = p.run_id"
            " WHERE r.name = %s AND p.key = %s",
            (run, key),
        ).fetchone()
    if row is None:
        return None
    try:
        meta = json.loads(row[0])
        return bytes(row[1]), int(meta.get("dropped", 0))
    except (ValueError, TypeError, AttributeError):
        return None  # a row this version cannot read: computed again
