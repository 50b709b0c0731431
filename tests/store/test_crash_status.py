"""Run status after a crash (issue #11 item 11): a writer on this machine whose process is
gone reads "interrupted" at once (pid plus process start time, so a reused pid does not
count); a live one reads "running"; a writer on another host keeps the heartbeat rule; a
store of schema 2 (no process identity) still reads, by heartbeat."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import deepscope.store
from deepscope.store.liveness import process_id
from deepscope.store.schema import DB_NAME, create_or_upgrade

pytestmark = pytest.mark.skipif(
    process_id() is None, reason="needs /proc (Linux) to tell a dead local writer at once"
)

CHILD = textwrap.dedent(
    """
    import sys, time
    import deepscope
    run = deepscope.init(logdir=sys.argv[1], name="victim", heartbeat_interval=3600)
    run.log({"loss": 1.0})
    run.flush()
    print("ready", flush=True)
    time.sleep(600)
    """
)

HOUR = 3600.0  # a stale_after no heartbeat in these tests can reach


def _status(logdir: Path, stale_after: float = HOUR) -> str:
    return deepscope.store.open(logdir, stale_after=stale_after).run("victim").info().status


def _start(tmp_path: Path) -> tuple[subprocess.Popen[str], Path]:
    logdir = tmp_path / "runs"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(logdir)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, logdir


def test_killed_writer_reads_interrupted_at_once_live_one_running(tmp_path: Path) -> None:
    proc, logdir = _start(tmp_path)
    try:
        assert _status(logdir) == "running"  # a live writer in another process
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30  # until the kernel has killed it (a zombie counts)
        while _status(logdir) == "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _status(logdir) == "interrupted"  # long before any heartbeat goes stale
    finally:
        proc.kill()
        proc.wait()
    assert _status(logdir) == "interrupted"  # reaped too


def test_reused_pid_does_not_revive_a_dead_writer(tmp_path: Path) -> None:
    proc, logdir = _start(tmp_path)
    proc.kill()
    proc.wait()
    # the dead writer's pid now names a live process (this one): its start time differs
    conn = sqlite3.connect(logdir / "victim" / DB_NAME)
    conn.execute("UPDATE session SET pid = ?", (os.getpid(),))
    conn.commit()
    conn.close()
    assert _status(logdir) == "interrupted"
    # while the same pid *with* this process's start time reads as live
    conn = sqlite3.connect(logdir / "victim" / DB_NAME)
    conn.execute("UPDATE session SET proc_id = ?", (process_id(),))
    conn.commit()
    conn.close()
    assert _status(logdir) == "running"


def test_writer_on_another_host_keeps_the_heartbeat_rule(tmp_path: Path) -> None:
    proc, logdir = _start(tmp_path)
    proc.kill()
    proc.wait()
    conn = sqlite3.connect(logdir / "victim" / DB_NAME)
    conn.execute("UPDATE session SET host = 'another-machine'")
    conn.commit()
    conn.close()
    assert _status(logdir) == "running"  # this machine cannot tell: heartbeat is fresh
    time.sleep(0.05)
    assert _status(logdir, stale_after=0.01) == "interrupted"


def test_schema_2_store_still_reads_status_by_heartbeat(tmp_path: Path) -> None:
    run_dir = tmp_path / "victim"
    run_dir.mkdir()
    conn = sqlite3.connect(run_dir / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN")
    create_or_upgrade(conn, 0, 2)
    now = time.time()
    conn.execute(
        "INSERT INTO run (id, name, created, schema_version) VALUES (1, 'v', ?, 2)", (now,)
    )
    conn.execute(
        "INSERT INTO session (pid, host, started, heartbeat) VALUES (?, 'h', ?, ?)",
        (os.getpid() + 10**6, now, now),
    )
    conn.execute("PRAGMA user_version = 2")
    conn.execute("COMMIT")
    conn.close()
    assert _status(tmp_path) == "running"
    time.sleep(0.05)
    assert _status(tmp_path, stale_after=0.01) == "interrupted"
    # a writer joining it upgrades it to schema 3 and records its process identity
    run = deepscope.init(logdir=tmp_path, name="victim")
    run.log({"loss": 1.0})
    run.flush()
    conn = sqlite3.connect(run_dir / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    ids = [r[0] for r in conn.execute("SELECT proc_id FROM session ORDER BY id")]
    conn.close()
    assert ids == [None, process_id()]
    assert _status(tmp_path) == "running"
    run.finish()
    assert [p.value for p in deepscope.store.open(tmp_path).run("victim").scalars("loss")] == [1.0]
