"""Session-wide fixtures shared by every test directory.

The PostgreSQL fixtures (`pg_cluster`, `pg_url`, `pg_fresh_url`) live in tests/_pg.py.
"""

from _pg import pg_cluster, pg_fresh_url, pg_url  # noqa: F401 - pytest fixtures
