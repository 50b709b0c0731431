"""The temporary PostgreSQL cluster of tests/_pg.py works: connect, fresh databases, restart."""

from __future__ import annotations

import psycopg

from _pg import PgCluster


def test_cluster_serves_fresh_databases_and_restarts(
    pg_cluster: PgCluster, pg_url: str, pg_fresh_url: str
) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS harness_probe (x int)")
    with psycopg.connect(pg_fresh_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'harness_probe'"
        ).fetchone()
        assert row == (0,)  # a fresh database does not see the session database's tables
    assert ":" in pg_url.split("@")[0].split("//")[1]  # the URL carries a password
    pg_cluster.restart()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM harness_probe").fetchone() == (0,)
