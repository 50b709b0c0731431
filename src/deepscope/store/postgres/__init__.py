"""The PostgreSQL run store (``postgresql://user:password@host:5432/db``; psycopg 3).

Many hosts and ranks write one database; the dashboard reads it. Same contract as the
SQLite store (`deepscope.store.protocol`): `PostgresStore` reads, `PostgresRunWriter`
writes (bulk COPY, idempotent batch ids, spill and replay while the database is down).
Needs the ``[postgres]`` extra: ``pip install 'deepscope[postgres]'``.

Example:
    >>> store = deepscope.store.open("postgresql://me@db.example/deepscope")  # doctest: +SKIP
    >>> run = deepscope.init(store="postgresql://me@db.example/deepscope")  # doctest: +SKIP
"""

from __future__ import annotations

from deepscope.store.postgres.reader import PostgresRunReader, PostgresStore
from deepscope.store.postgres.url import is_postgres_url, mask
from deepscope.store.postgres.writer import PostgresRunWriter

__all__ = ["PostgresRunReader", "PostgresRunWriter", "PostgresStore", "is_postgres_url", "mask"]
