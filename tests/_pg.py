"""A temporary PostgreSQL cluster for the tests (and `benchmarks/store_bench.py`).

`PgCluster.start()` runs Debian's `initdb` as an unprivileged user (initdb refuses root:
as root we create the system user ``deepscope-pg`` once, or fall back to ``nobody``), on a
free port on 127.0.0.1 with its unix socket in the temporary directory, and `pg_ctl start -w`.
The superuser ``deepscope`` has a random password (TCP uses scram-sha-256), so every URL the
tests pass around carries a credential that must never show up in logs or errors.

Fixtures (registered by tests/conftest.py):
- ``pg_cluster`` (session): the running `PgCluster` (``.url``, ``.admin_url()``,
  ``.restart()``, ``.stop()``, ``.start_again()``, ``.pg_ctl(...)``, ``.terminate_backends()``).
- ``pg_url`` (session): URL of database ``deepscope`` on it.
- ``pg_fresh_url`` (function): URL of a new, empty database for one test (dropped after).

Skip rule: the tests skip only when the PostgreSQL binaries are absent; with
``DEEPSCOPE_REQUIRE_POSTGRES=1`` (set by .ci/run) they fail instead.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_USER = "deepscope"
_SYSTEM_USER = "deepscope-pg"
_counter = itertools.count()


def pg_bindir() -> Path | None:
    """The directory holding `initdb` and `pg_ctl`, or None when PostgreSQL is not installed."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            if (directory / "postgres").exists():
                return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    """The unprivileged user to run the server as when we are root, else None."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(_SYSTEM_USER)
        return _SYSTEM_USER
    except KeyError:
        pass
    made = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _SYSTEM_USER],
        capture_output=True,
    )
    if made.returncode == 0 or _user_exists(_SYSTEM_USER):
        return _SYSTEM_USER
    return "nobody"


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class PgCluster:
    """One throw-away PostgreSQL cluster in a temporary directory."""

    def __init__(self, *, fsync: bool = False, max_connections: int = 200) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found: apt-get install postgresql")
        self.bindir = bindir
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="deepscope-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.password = secrets.token_hex(12)
        self.port = 0
        self.fsync = fsync
        self.max_connections = max_connections
        if self.user is not None:
            info = pwd.getpwnam(self.user)
            os.chown(self.root, info.pw_uid, info.pw_gid)
        os.chmod(self.root, 0o700)

    # -- running the binaries -------------------------------------------------------------
    def _cmd(self, tool: str, *args: str) -> list[str]:
        argv = [str(self.bindir / tool), *args]
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        return argv

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `pg_ctl -D DATA ARGS...` as the cluster's user."""
        return subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.data), *args),
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def start(self) -> PgCluster:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.user is not None:
            info = pwd.getpwnam(self.user)
            os.chown(pwfile, info.pw_uid, info.pw_gid)
        subprocess.run(
            self._cmd(
                "initdb", "-D", str(self.data), "-U", PG_USER, "-E", "UTF8",
                "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}", "--no-sync", "--no-instructions",
            ),
            capture_output=True, text=True, check=True, timeout=300,
        )  # fmt: skip
        pwfile.unlink()
        last: subprocess.CompletedProcess[str] | None = None
        for _ in range(5):  # the free port can be taken between probe and bind: retry
            self.port = _free_port()
            last = self._start_server()
            if last.returncode == 0:
                break
        else:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {last.stderr if last else ''}\n{log}")
        self._psql_admin("CREATE DATABASE deepscope")
        return self

    def _start_server(self) -> subprocess.CompletedProcess[str]:
        opts = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections} "
            f"-c fsync={'on' if self.fsync else 'off'} "
            f"-c full_page_writes={'on' if self.fsync else 'off'} "
            "-c shared_buffers=64MB"
        )
        return self.pg_ctl("-l", str(self.log), "-w", "-t", "60", "-o", opts, "start", check=False)

    def start_again(self) -> None:
        """Start the server after `stop()` on the same port and data directory."""
        done = self._start_server()
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}")

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart -m MODE` (drops every connection)."""
        self.stop(mode)
        self.start_again()

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-t", "60", "-m", mode, "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- URLs and admin SQL ---------------------------------------------------------------
    def url_for(self, dbname: str) -> str:
        return f"postgresql://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    @property
    def url(self) -> str:
        return self.url_for("deepscope")

    def admin_url(self) -> str:
        return self.url_for("postgres")

    def _psql_admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=30) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def fresh_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"t{os.getpid()}_{next(_counter)}"
        self._psql_admin(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url_for(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with contextlib.suppress(Exception):
            self._psql_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def terminate_backends(self, dbname: str | None = None) -> int:
        """`pg_terminate_backend` every other client connection (of `dbname` if given)."""
        import psycopg

        where = "pid <> pg_backend_pid() AND backend_type = 'client backend'"
        params: tuple[str, ...] = ()
        if dbname is not None:
            where += " AND datname = %s"
            params = (dbname,)
        with psycopg.connect(self.admin_url(), autocommit=True, connect_timeout=30) as conn:
            rows = conn.execute(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}",  # type: ignore[arg-type]
                params,
            ).fetchall()
        return len(rows)


def _unavailable(reason: str) -> None:
    if os.environ.get("DEEPSCOPE_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (DEEPSCOPE_REQUIRE_POSTGRES=1: CI must not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A running temporary PostgreSQL cluster for the whole session."""
    if pg_bindir() is None:
        _unavailable("PostgreSQL binaries (initdb, pg_ctl) absent: apt-get install postgresql")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed: pip install 'deepscope[postgres]'")
    cluster = PgCluster()
    try:
        cluster.start()
    except Exception:
        cluster.destroy()
        raise
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PgCluster) -> str:
    """URL (with a password) of the session's database ``deepscope``."""
    return pg_cluster.url


@pytest.fixture
def pg_fresh_url(pg_cluster: PgCluster) -> Iterator[str]:
    """URL of a new empty database for one test; dropped afterwards."""
    url = pg_cluster.fresh_database()
    try:
        yield url
    finally:
        pg_cluster.drop_database(url)


def wait_for(predicate: object, timeout: float = 10.0) -> bool:
    """Poll `predicate()` until true or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False
