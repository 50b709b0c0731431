"""Connection settings, one-time schema creation, BEGIN IMMEDIATE on every write path, and
the refusal of network filesystems (S2, S4, S5, S7)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

import deepscope
from deepscope.errors import StoreError
from deepscope.store import schema
from deepscope.store.schema import connect_reader, connect_writer, filesystem_type

SRC = Path(deepscope.__file__).parent / "store"


@pytest.mark.parametrize(("durability", "level"), [("normal", 1), ("full", 2)])
def test_writer_connection_pragmas(tmp_path: Path, durability: str, level: int) -> None:
    run = deepscope.init(logdir=tmp_path, name="r", durability=durability)
    run.log({"x": 1.0})
    run.flush()
    conn = run._writer._conn
    assert conn is not None
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == level
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    assert conn.execute("PRAGMA journal_size_limit").fetchone()[0] > 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
    run.finish()
    reader = connect_reader(tmp_path / "r" / "run.db")
    assert reader.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.execute("INSERT INTO tag (name, kind) VALUES ('a', 'b')")


def test_bad_durability_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="durability"):
        deepscope.init(logdir=tmp_path, durability="fast")


def test_schema_is_created_once_however_often_it_is_opened(tmp_path: Path) -> None:
    db = tmp_path / "run.db"
    conns = [connect_writer(db) for _ in range(5)]
    assert conns[0].execute("SELECT COUNT(*) FROM migration").fetchone()[0] == 1
    for c in conns:
        c.close()


def test_every_write_runs_inside_begin_immediate(tmp_path: Path) -> None:
    """Trace every statement the writer sends: each INSERT/UPDATE/DELETE sits between a
    BEGIN IMMEDIATE and its COMMIT (a deferred read-then-write would hit BUSY_SNAPSHOT)."""
    run = deepscope.init(logdir=tmp_path, name="r")
    statements: list[str] = []
    assert run._writer._conn is not None
    run._writer._conn.set_trace_callback(statements.append)
    for i in range(20):
        run.log({"a": float(i), "b": float("nan")})
    run.log_histogram("h", [1.0, 2.0])
    run.log_text("t", "x")
    run.log_event("k", "m")
    run.finish()
    assert any(s.startswith("INSERT INTO scalar") for s in statements)
    in_tx = False
    for s in statements:
        head = s.split(None, 2)[:2]
        if s.startswith("BEGIN"):
            assert s == "BEGIN IMMEDIATE", s
            in_tx = True
        elif s in ("COMMIT", "ROLLBACK"):
            in_tx = False
        elif head and head[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE"):
            assert in_tx, f"write outside BEGIN IMMEDIATE: {s}"


def test_source_never_uses_deferred_write_transactions() -> None:
    for path in SRC.glob("*.py"):
        text = path.read_text()
        for m in re.finditer(r'"(BEGIN[^"]*)"', text):
            stmt = m.group(1)
            if path.name == "reader.py":
                assert stmt == "BEGIN", f"{path.name}: {stmt}"  # read-only snapshots
            else:
                assert stmt == "BEGIN IMMEDIATE", f"{path.name}: {stmt}"
        assert "isolation_level=None" in text or "sqlite3.connect" not in text, path.name


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export /mnt/nfs nfs4 rw,relatime 0 0
//host/share /mnt/smb cifs rw 0 0
sshfs#me@h: /mnt/ssh fuse.sshfs rw 0 0
/dev/vdb /mnt/nfs/local ext4 rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "fs"),
    [
        ("/home/x/runs", "ext4"),
        ("/mnt/nfs/runs", "nfs4"),
        ("/mnt/nfs", "nfs4"),
        ("/mnt/nfsother", "ext4"),
        ("/mnt/smb/a", "cifs"),
        ("/mnt/ssh/a", "fuse.sshfs"),
        ("/mnt/nfs/local/runs", "ext4"),
    ],
)
def test_filesystem_type_uses_the_longest_mount_prefix(path: str, fs: str) -> None:
    assert filesystem_type(Path(path), MOUNTS)[0] == fs


@pytest.mark.parametrize(
    "fs", ["nfs", "nfs4", "cifs", "smb3", "fuse.sshfs", "fuse", "9p", "lustre"]
)
def test_init_refuses_a_network_filesystem_with_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fs: str
) -> None:
    monkeypatch.delenv(schema.ALLOW_NETWORK_FS_ENV, raising=False)
    monkeypatch.setattr(schema, "filesystem_type", lambda p, mounts=None: (fs, "/mnt/x"))
    with pytest.raises(StoreError, match="network filesystem") as info:
        deepscope.init(logdir=tmp_path / "runs")
    message = str(info.value)
    assert "local disk" in message and f"{schema.ALLOW_NETWORK_FS_ENV}=1" in message
    assert "allow_network_fs=True" in message
    # no flag or backend that does not exist is offered (there is no --store option)
    assert "--store" not in message and "postgres" not in message.lower()
    assert not (tmp_path / "runs").exists()
    deepscope.init(logdir=tmp_path / "runs", allow_network_fs=True).finish()
    monkeypatch.setenv(schema.ALLOW_NETWORK_FS_ENV, "1")
    deepscope.init(logdir=tmp_path / "runs").finish()


def test_local_filesystems_are_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for fs in ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "apfs", ""]:
        monkeypatch.setattr(schema, "filesystem_type", lambda p, mounts=None, fs=fs: (fs, "/"))
        schema.check_local_filesystem(tmp_path)
