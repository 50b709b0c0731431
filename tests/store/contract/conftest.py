"""The store contract suite runs every test once per backend: ``sqlite`` (a log directory)
and ``postgres`` (a fresh database on the session's temporary cluster, tests/_pg.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _pg import PgCluster

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Where a test's runs go: a log directory or a ``postgresql://`` URL (empty either way)."""
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("logdir"))
        return
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    url = cluster.fresh_database()
    try:
        yield url
    finally:
        import deepscope.store.process

        deepscope.store.process.close_all()  # no writer of this test outlives its database
        cluster.drop_database(url)
