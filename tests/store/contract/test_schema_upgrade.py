"""Schema versions on every backend: a store written by an older deepscope is upgraded in
place when opened (data kept, idempotent, many writers at once), and a store of a newer
deepscope is refused with an error that says to upgrade deepscope."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import deepscope
import deepscope.store
from deepscope.errors import StoreError
from deepscope.store.postgres.url import is_postgres_url, mask


def _write(target: str, name: str, n: int = 50) -> str:
    with deepscope.init(store=target, name=name) as run:
        for step in range(n):
            run.log({"x": float(step)}, step=step)
        run.log_text("t", f"{name} text", step=0)
        return run.name


def _read(target: str, name: str) -> tuple[list[float], bytes, str]:
    reader = deepscope.store.open(target).run(name)
    (text,) = reader.blobs("text")
    return (
        [p.value for p in reader.scalars("x", max_points=10_000)],
        reader.read_blob(text),
        reader.info().status,
    )


# ---- PostgreSQL: meta.schema_version ------------------------------------------------------------
def _pg(url: str, sql: str) -> object:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else None


def _pg_version(url: str) -> int:
    rows = _pg(url, "SELECT value FROM deepscope.meta WHERE key = 'schema_version'")
    return int(rows[0][0])  # type: ignore[index]


def _pg_has_batch_index(url: str) -> bool:
    return bool(_pg(url, "SELECT 1 FROM pg_indexes WHERE schemaname = 'deepscope'"
                         " AND indexname = 'batch_run'"))  # fmt: skip


def _forget(url: str) -> None:
    """This process re-checks the schema of `url` (as a freshly started one would)."""
    from deepscope.store.postgres import schema

    schema._READY.discard(mask(url))


def _stamp_pg_v2(url: str) -> None:
    """Make the database what deepscope with schema 2 left: no batch_run index, version 2."""
    _pg(url, "DROP INDEX deepscope.batch_run")
    _pg(url, "UPDATE deepscope.meta SET value = '2' WHERE key = 'schema_version'")
    _forget(url)


def _sqlite_version(root: str, name: str) -> int:
    conn = sqlite3.connect(Path(root, name, "run.db"))
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _stamp_sqlite_v2(root: str, name: str) -> None:
    """Make the run what deepscope with schema 2 wrote: no session.proc_id, version 2."""
    conn = sqlite3.connect(Path(root, name, "run.db"), isolation_level=None)
    try:
        conn.execute("ALTER TABLE session DROP COLUMN proc_id")
        conn.execute("PRAGMA user_version = 2")
    finally:
        conn.close()


def test_an_older_store_is_upgraded_in_place_and_keeps_its_data(target: str) -> None:
    from deepscope.store.postgres.schema import SCHEMA_VERSION as PG_VERSION
    from deepscope.store.schema import SCHEMA_VERSION as SQLITE_VERSION

    name = _write(target, "old")
    want = _read(target, name)
    if is_postgres_url(target):
        _stamp_pg_v2(target)
        assert _pg_version(target) == 2 and not _pg_has_batch_index(target)
    else:
        _stamp_sqlite_v2(target, name)
    assert _read(target, name) == want  # readable as it is (SQLite readers never migrate)
    with deepscope.init(store=target, name=name) as run:  # a writer joins: upgrades
        run.log({"x": 99.0}, step=50)
    values, text, status = _read(target, name)
    assert values == [*want[0], 99.0] and text == want[1] and status == "finished"
    if is_postgres_url(target):
        assert _pg_version(target) == PG_VERSION == 3 and _pg_has_batch_index(target)
        _forget(target)
        assert _read(target, name)[0] == values  # idempotent: opening again changes nothing
        assert _pg_version(target) == 3
    else:
        assert _sqlite_version(target, name) == SQLITE_VERSION == 3


def test_a_newer_store_is_refused_with_upgrade_advice(target: str) -> None:
    name = _write(target, "new")
    if is_postgres_url(target):
        _pg(target, "UPDATE deepscope.meta SET value = '99' WHERE key = 'schema_version'")
        _forget(target)
        with pytest.raises(StoreError, match=r"newer deepscope.*99.*upgrade deepscope"):
            deepscope.store.open(target).runs()
    else:
        conn = sqlite3.connect(Path(target, name, "run.db"), isolation_level=None)
        conn.execute("PRAGMA user_version = 99")
        conn.close()
        store = deepscope.store.open(target)
        (info,) = store.runs()  # the listing still works; the run says why it is not read
        assert info.status == "unreadable"
        assert info.error is not None and "newer deepscope" in info.error
        assert "upgrade deepscope" in info.error
        with pytest.raises(StoreError, match="upgrade deepscope"):
            store.run(name).scalars("x")
    with pytest.raises(StoreError, match=r"newer deepscope.*upgrade deepscope"):
        deepscope.init(store=target, name=name, strict=True)
    if is_postgres_url(target):
        assert _pg_version(target) == 99  # never "downgraded"
    else:
        assert _sqlite_version(target, name) == 99


def test_pg_many_writers_upgrading_at_once_agree(pg_fresh_url: str) -> None:
    """Eight processes' worth of connections open a schema-2 database at the same moment:
    one upgrades, the others wait for the lock and find it done; no deadlock, no error."""
    import psycopg

    from deepscope.store.postgres import schema

    url = pg_fresh_url
    name = _write(url, "shared")
    _stamp_pg_v2(url)
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def open_one(i: int) -> None:
        try:
            with psycopg.connect(url, autocommit=False) as conn:
                barrier.wait(timeout=30)
                schema.ensure_schema(conn, f"{mask(url)}#{i}")  # own key: each one checks
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert _pg_version(url) == 3 and _pg_has_batch_index(url)
    assert _read(url, name)[0] == [float(i) for i in range(50)]


def test_pg_a_development_schema_is_refused(pg_fresh_url: str) -> None:
    _write(pg_fresh_url, "dev", n=2)
    _pg(pg_fresh_url, "UPDATE deepscope.meta SET value = '1' WHERE key = 'schema_version'")
    _forget(pg_fresh_url)
    with pytest.raises(StoreError, match="development version.*deepscope migrate"):
        deepscope.store.open(pg_fresh_url).runs()
