"""Deleting a run from a PostgreSQL store, in one transaction.

`delete_postgres_run` locks the run's row (``SELECT … FOR UPDATE``: a second deletion of
the same run waits, then finds nothing), reads its sessions and refuses a run that is
still being written unless forced (as the listing tells it:
`deepscope.store.records.run_status`), then deletes every row keyed by the run: tables
with a ``tag_id`` column by the run's tags (scalars, the min/max pyramid, histograms),
tables with a ``run_id`` column by the run (blobs, blob bytes (``bytea``), events, batch
ids, sessions, tags and any table a later deepscope adds with such a column), then the
run. The tables are found in the catalog, so none is forgotten. Either all of it is gone
or, on any error, nothing. The blob files cached on this machine for the run are removed
afterwards (`deepscope.store.admin.remove_tree`: links never followed).

A forced deletion of a run whose writer is really alive: the writer's later batches fail
(their tags are gone) or leave rows no run reaches; stop the training first.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from deepscope.errors import NotFoundError, RunInUseError, StoreError
from deepscope.store.checks import BadValue
from deepscope.store.postgres.schema import ensure_schema
from deepscope.store.postgres.url import connect, mask, scrub
from deepscope.store.records import run_status, session_rows
from deepscope.store.schema import is_valid_run_name

if TYPE_CHECKING:
    from deepscope.store.postgres.reader import PostgresStore

__all__ = ["delete_postgres_run", "run_tables"]

# Deleted last, in this order (tag and session reference run).
_LAST = ("tag", "session")


def run_tables(conn: Any) -> tuple[list[str], list[str]]:
    """Tables of schema ``deepscope`` keyed by tag (a ``tag_id`` and no ``run_id`` column)
    and by run (a ``run_id`` column), each sorted by name."""
    rows = conn.execute(
        "SELECT c.relname, array_agg(a.attname::text) FROM pg_catalog.pg_class c"
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid"
        " WHERE n.nspname = 'deepscope' AND c.relkind IN ('r', 'p')"
        " AND a.attname IN ('run_id', 'tag_id') AND a.attnum > 0 AND NOT a.attisdropped"
        " GROUP BY c.relname ORDER BY c.relname"
    ).fetchall()
    by_tag = [str(r[0]) for r in rows if "run_id" not in r[1]]
    by_run = [str(r[0]) for r in rows if "run_id" in r[1]]
    return by_tag, by_run


def delete_postgres_run(store: PostgresStore, name: str, *, force: bool = False) -> None:
    """Delete run `name` of `store` (every row of it; see the module doc).

    Raises `NotFoundError` for an unknown run, `RunInUseError` for a run still being
    written unless `force`, `StoreError` when the database fails (password scrubbed).
    """
    import psycopg
    from psycopg import sql

    if not isinstance(name, str) or not is_valid_run_name(name):
        raise NotFoundError(f"no run named {name!r}")
    url = store.url
    try:
        conn = connect(url, application="deepscope-admin", autocommit=False)
    except psycopg.Error as exc:
        raise StoreError(f"cannot connect to {mask(url)}: {scrub(str(exc), url)}") from None
    try:
        ensure_schema(conn, mask(url))
        with conn.transaction():
            row = conn.execute(
                "SELECT id FROM deepscope.run WHERE name = %s FOR UPDATE", (name,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no run named {name!r} in {mask(url)}")
            run_id = int(row[0])
            sessions = conn.execute(
                "SELECT parent, heartbeat, ended, state, pid, host, proc_id"
                " FROM deepscope.session WHERE run_id = %s ORDER BY id",
                (run_id,),
            ).fetchall()
            try:
                status = run_status(session_rows(sessions), time.time(), store.stale_after)
            except BadValue:
                status = "unreadable"
            if status in ("running", "unreadable") and not force:
                what = "is still being written (a live session)" if status == "running" else (
                    "has sessions with wrong value types, so whether it is live cannot be told"
                )  # fmt: skip
                raise RunInUseError(
                    f"run '{name}' {what}: stop the training first, or pass --force "
                    "(force=True) to delete it anyway"
                )
            tags = [int(r[0]) for r in conn.execute(
                "SELECT id FROM deepscope.tag WHERE run_id = %s", (run_id,)
            ).fetchall()]  # fmt: skip
            by_tag, by_run = run_tables(conn)
            for table in by_tag:
                conn.execute(
                    sql.SQL("DELETE FROM deepscope.{} WHERE tag_id = ANY(%s)").format(
                        sql.Identifier(table)
                    ),
                    (tags,),
                )
            last = [t for t in _LAST if t in by_run]
            for table in [t for t in by_run if t not in _LAST] + last:
                conn.execute(
                    sql.SQL("DELETE FROM deepscope.{} WHERE run_id = %s").format(
                        sql.Identifier(table)
                    ),
                    (run_id,),
                )
            conn.execute("DELETE FROM deepscope.run WHERE id = %s", (run_id,))
    except psycopg.Error as exc:
        raise StoreError(
            f"deleting run '{name}' from {mask(url)} failed (nothing was deleted): "
            f"{scrub(str(exc), url)}"
        ) from None
    finally:
        conn.close()
    _drop_cache(store, name)


def _drop_cache(store: PostgresStore, name: str) -> None:
    """Remove the run's local blob cache (best effort: it is only a cache)."""
    import os

    from deepscope.store.admin import remove_tree

    cache = store.root / name
    if os.path.lexists(cache):
        try:
            remove_tree(cache)
        except (StoreError, OSError):
            pass
