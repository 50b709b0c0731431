"""kill -9 at random moments (S1): the store opens without repair, integrity holds, every
acknowledged point is there, every batch is whole, and the run reads "interrupted"."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import deepscope.store

K = 12  # tags per step: one run.log call, so one all-or-nothing unit

CHILD = textwrap.dedent(
    """
    import os, sys
    import deepscope
    logdir, ack_path, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    run = deepscope.init(logdir=logdir, name="victim", flush_interval=0.02,
                         heartbeat_interval=0.05)
    fd = os.open(ack_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    step = 0
    while True:
        run.log({f"t{j}": step + j / 100 for j in range(k)}, step=step)
        if step % 5 == 4:
            run.flush()
            os.write(fd, f"{step}\\n".encode())  # acknowledged only after flush() returned
        step += 1
    """
)


def _acked(path: Path) -> int:
    steps = [int(line) for line in path.read_text().split("\n") if line.strip().isdigit()]
    return max(steps, default=-1)


def _kill_once(tmp: Path, rng: random.Random, script: Path) -> tuple[Path, int]:
    logdir, ack = tmp / "runs", tmp / "ack.txt"
    proc = subprocess.Popen([sys.executable, str(script), str(logdir), str(ack), str(K)])
    try:
        deadline = time.monotonic() + 30
        while (_acked(ack) if ack.exists() else -1) < 0:
            assert proc.poll() is None, "the logging child died on its own"
            assert time.monotonic() < deadline, "the child never acknowledged a flush"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.25))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    return logdir, _acked(ack)


def _check(logdir: Path, acked: int) -> None:
    db = logdir / "victim" / "run.db"
    conn = sqlite3.connect(db)  # a plain open: no repair step of ours
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        per_step = dict(conn.execute("SELECT step, COUNT(*) FROM scalar GROUP BY step"))
        assert set(per_step.values()) == {K}, "a batch was split"
        assert set(range(acked + 1)) <= set(per_step), "an acknowledged point is missing"
        last = max(per_step)
        assert set(per_step) == set(range(last + 1))
        counts = dict(conn.execute("SELECT name, count FROM tag WHERE kind = 'scalar'"))
        assert counts == {f"t{j}": last + 1 for j in range(K)}  # stats commit with the data
    finally:
        conn.close()


def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    rng = random.Random(1234)
    logdirs = []
    for i in range(20):
        tmp = tmp_path / f"k{i}"
        tmp.mkdir()
        logdir, acked = _kill_once(tmp, rng, script)
        assert acked >= 4
        _check(logdir, acked)
        logdirs.append(logdir)
    time.sleep(0.3)
    for logdir in logdirs:
        info = deepscope.store.open(logdir, stale_after=0.25).run("victim").info()
        assert info.status == "interrupted"
