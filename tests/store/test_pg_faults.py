"""Faults on the PostgreSQL store (issue #21), with the real server of tests/_pg.py:

- kill -9 of 20 writer processes at random moments: every point acknowledged by a returned
  `flush()` is there, each `run.log` call is whole (all its tags or none), nothing twice,
  the run reads "interrupted";
- the server stopped and started again, or restarted in ``immediate`` mode (a crash), while
  a run logs: the writer spills, reconnects with backoff and replays; every point once;
- the writer's connection killed server-side (``pg_terminate_backend``), repeatedly;
- the spill file cannot grow (``RLIMIT_FSIZE`` in a child, like a full disk) while the
  database is down: training goes on, one clear warning, nothing lost once it is back.

Every check reads through the store contract (`deepscope.store.open(url)`).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import deepscope
import deepscope.store
from deepscope.store.postgres.spill import decode_batch
from deepscope.store.writer import StoreWarning

K = 6  # tags per run.log call: one all-or-nothing unit
KILLS = 20
WAVE = 10  # victims logging at once

# Imports deepscope once, then forks one victim per "go NAME" line read from stdin.
LAUNCHER = textwrap.dedent(
    """
    import os, sys, time
    import psycopg  # noqa: F401 - imported once, before the forks
    import deepscope
    url, acks, k = sys.argv[1], sys.argv[2], int(sys.argv[3])

    def victim(name):
        run = deepscope.init(store=url, name=name, flush_interval=0.02, heartbeat_interval=0.05)
        fd = os.open(os.path.join(acks, name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        step = 0
        while True:
            run.log({f"t{j}": step + j / 100 for j in range(k)}, step=step)
            if step % 5 == 4:
                run.flush()
                os.write(fd, f"{step}\\n".encode())  # acknowledged only after flush() returned
                time.sleep(0.002)  # leave the CPU to the server and the other victims
            step += 1

    for line in sys.stdin:
        name = line.split()[1]
        pid = os.fork()
        if pid == 0:
            try:
                victim(name)
            finally:
                os._exit(3)
        print("PID", name, pid, flush=True)
    """
)


def _acked(path: Path) -> int:
    if not path.exists():
        return -1
    steps = [int(x) for x in path.read_text().split("\n") if x.strip().isdigit()]
    return max(steps, default=-1)


def _check_prefix(store: Any, name: str, acked: int) -> int:
    """The run holds steps 0..n-1 of every tag, each once with its value, n > acked."""
    r = store.run(name)
    counts = {t.tag: t.count for t in r.tags() if t.kind == "scalar"}
    assert set(counts) == {f"t{j}" for j in range(K)}, counts
    n = counts["t0"]
    assert all(c == n for c in counts.values()), f"{name}: a run.log call was split: {counts}"
    assert n > acked, f"{name}: acknowledged step {acked} lost (only {n} steps stored)"
    for j in (0, K - 1):
        pts = r.scalars(f"t{j}", max_points=n + 1)
        assert [p.step for p in pts] == list(range(n)), f"{name}: steps missing or twice"
        assert [p.value for p in pts] == [s + j / 100 for s in range(n)]
    return n


def test_kill9_of_twenty_writers_loses_nothing_acknowledged(
    pg_fresh_url: str, tmp_path: Path
) -> None:
    rng = random.Random(21)
    # The schema first: writers starting together on an empty database may deadlock (see
    # the start-together test); this test is about kill -9.
    deepscope.init(store=pg_fresh_url, name="schema").finish()
    acks = tmp_path / "acks"
    acks.mkdir()
    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER)
    launcher = subprocess.Popen(
        [sys.executable, str(script), pg_fresh_url, str(acks), str(K)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdin is not None and launcher.stdout is not None
    acked: dict[str, int] = {}
    try:
        for wave in range(0, KILLS, WAVE):
            pids: dict[str, int] = {}
            for i in range(wave, wave + WAVE):
                launcher.stdin.write(f"go victim-{i:02d}\n")
                launcher.stdin.flush()
                _, name, pid = launcher.stdout.readline().split()
                pids[name] = int(pid)
            deadline = time.monotonic() + 60
            for name, pid in pids.items():  # each victim dies at its own random moment
                while _acked(acks / name) < 0:
                    assert time.monotonic() < deadline, f"{name} never acknowledged a flush"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.15))
                os.kill(pid, signal.SIGKILL)
            for name in pids:
                acked[name] = _acked(acks / name)  # the file is final: its writer is dead
    finally:
        launcher.stdin.close()
        launcher.wait(timeout=30)
    store = deepscope.store.open(pg_fresh_url)
    assert store.run_names() == ["schema", *sorted(acked)]
    lost_unacked = []
    for name, last in sorted(acked.items()):
        n = _check_prefix(store, name, last)
        lost_unacked.append(n - 1 - last)  # steps committed past the last acknowledgement
        assert store.run(name).info().status == "interrupted"
    assert min(lost_unacked) >= 0


START_TOGETHER = textwrap.dedent(
    """
    import os, sys, time, warnings
    import psycopg  # noqa: F401 - imported once, before the forks
    import deepscope
    url, n = sys.argv[1], int(sys.argv[2])
    warnings.simplefilter("error")  # a StoreWarning (a fault: spill) fails the child
    pids = []
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                run = deepscope.init(store=url, name=f"rank-{i}", flush_interval=0.02,
                                     heartbeat_interval=0.05)
                for step in range(100):
                    run.log({"x": float(step)}, step=step)
                    if step % 5 == 4:
                        run.flush()
                run.finish()
                code = 0 if run.dropped == 0 else 2
            finally:
                os._exit(code)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids]
    print("CODES", *codes)
    """
)


def test_writers_starting_together_on_a_fresh_database_all_connect(
    pg_cluster: Any, tmp_path: Path
) -> None:
    """The ranks of a job start at once on an empty database: every writer creates or finds
    the schema and its run without a fault (no spill, no warning). Ten writers on a fresh
    database (a race: it need not show every time)."""
    script = tmp_path / "together.py"
    script.write_text(START_TOGETHER)
    for _ in range(1):
        url = pg_cluster.fresh_database()
        try:
            proc = subprocess.run(
                [sys.executable, str(script), url, "10"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert "CODES" in proc.stdout, proc.stderr[-3000:]
            assert proc.stdout.split()[1:] == ["0"] * 10, proc.stderr[-1500:]
            store = deepscope.store.open(url)
            assert store.run_names() == [f"rank-{i}" for i in range(10)]
            for name in store.run_names():
                assert [t.count for t in store.run(name).tags()] == [100]
        finally:
            pg_cluster.drop_database(url)


class Logger(threading.Thread):
    """Logs K tags per step (and an event every 50 steps) until stopped, as training would."""

    def __init__(self, run: Any, pause: float = 0.001) -> None:
        super().__init__(daemon=True)
        self.run_, self.pause, self.steps, self.error = run, pause, 0, None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                s = self.steps
                self.run_.log({f"t{j}": s + j / 100 for j in range(K)}, step=s)
                if s % 50 == 0:
                    self.run_.log_event("tick", f"event {s}", severity="info", step=s)
                self.steps += 1
                time.sleep(self.pause)
        except BaseException as exc:  # noqa: BLE001 - the test asserts there is none
            self.error = exc


def _check_all(url: str, name: str, steps: int) -> None:
    store = deepscope.store.open(url)
    assert _check_prefix(store, name, steps - 1) == steps  # every logged step, each once
    events = store.run(name).events(limit=10**6)  # in commit order (by id)
    assert [e.step for e in events] == list(range(0, steps, 50)), "events lost, twice or reordered"


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_server_down_then_back_spills_and_replays_once(
    pg_cluster: Any, pg_fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEEPSCOPE_SPILL_DIR", str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = deepscope.init(store=pg_fresh_url, name="restarts", flush_interval=0.05)
        logger = Logger(run)
        logger.start()
        try:
            _wait(lambda: logger.steps > 200, 30, "logging did not start")
            pg_cluster.stop("fast")
            try:
                _wait(lambda: run.dropped > 0, 30, "nothing was spilled while the server was down")
                down = logger.steps
                _wait(lambda: logger.steps > down + 300, 30, "training stalled while down")
                assert list(tmp_path.glob("deepscope-pg-restarts-*.spill.jsonl"))
            finally:
                pg_cluster.start_again()
            _wait(lambda: run.dropped == 0, 60, "the spilled batches were not replayed")
            up = logger.steps
            _wait(lambda: logger.steps > up + 200, 30, "logging did not go on")
            pg_cluster.restart("immediate")  # a crash: commits in flight are cut off
            _wait(lambda: logger.steps > up + 600, 30, "logging did not go on after the crash")
        finally:
            logger.stop.set()
            logger.join(30)
        assert logger.error is None, logger.error
        run.finish()
    assert run.dropped == 0
    _check_all(pg_fresh_url, "restarts", logger.steps)
    assert deepscope.store.open(pg_fresh_url).run("restarts").info().status == "finished"
    notes = [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]
    assert notes, "no warning while the database was down"
    password = pg_fresh_url.split("@")[0].rsplit(":", 1)[1]
    assert all(password not in n for n in notes)
    assert not list(tmp_path.glob("deepscope-pg-restarts-*.spill.jsonl"))  # replayed, removed


def _writers(cluster: Any, dbname: str) -> int:
    import psycopg

    with psycopg.connect(cluster.admin_url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            " AND application_name = 'deepscope-writer'",
            (dbname,),
        ).fetchone()
    return int(row[0]) if row else 0


def test_connection_killed_server_side_is_reopened(pg_cluster: Any, pg_fresh_url: str) -> None:
    dbname = pg_fresh_url.rsplit("/", 1)[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        run = deepscope.init(store=pg_fresh_url, name="dropped", flush_interval=0.05)
        logger = Logger(run)
        logger.start()
        try:
            for _ in range(5):
                at = logger.steps
                _wait(lambda at=at: logger.steps > at + 100, 30, "logging stalled")
                # connected again, with what it spilled meanwhile replayed
                _wait(lambda: run.dropped == 0 and _writers(pg_cluster, dbname) > 0, 30,
                      "the writer did not reconnect")  # fmt: skip
                assert pg_cluster.terminate_backends(dbname) >= 1
            _wait(lambda: run.dropped == 0, 30, "the last spill was not replayed")
        finally:
            logger.stop.set()
            logger.join(30)
        assert logger.error is None, logger.error
        run.finish()
    assert run.dropped == 0
    _check_all(pg_fresh_url, "dropped", logger.steps)


# A child whose files may not grow past LIMIT bytes (RLIMIT_FSIZE, like a full disk): its
# spill file fills while the database is down; it logs on until told to stop, then finishes.
FULL_DISK_CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys, time, warnings
    import deepscope
    url, stop_file, limit, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    warnings.simplefilter("always")
    run = deepscope.init(store=url, name="fullspill", flush_interval=0.05)
    step = 0
    while not os.path.exists(stop_file):
        run.log({f"t{j}": step + j / 100 for j in range(k)}, step=step)
        if step % 50 == 0:
            run.log_event("tick", f"event {step}", severity="info", step=step)
        if step == 200:
            run.flush()
            print("UP", flush=True)
        if step % 100 == 0:
            print("DROPPED", run.dropped, flush=True)
        step += 1
        time.sleep(0.001)
    run.finish()
    print("END", step, run.dropped, flush=True)
    """
)


def test_full_disk_on_the_spill_path_does_not_stop_training(
    pg_cluster: Any, pg_fresh_url: str, tmp_path: Path
) -> None:
    spill_dir, stop_file = tmp_path / "spill", tmp_path / "stop"
    spill_dir.mkdir()
    script = tmp_path / "child.py"
    script.write_text(FULL_DISK_CHILD)
    limit = 8192
    env = dict(os.environ, DEEPSCOPE_SPILL_DIR=str(spill_dir))
    child = subprocess.Popen(
        [sys.executable, str(script), pg_fresh_url, str(stop_file), str(limit), str(K)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdout is not None
    lines: list[str] = []

    def read_until(pred: Any, what: str) -> None:
        deadline = time.monotonic() + 60
        while True:
            line = child.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the child ended early ({what}): {child.stderr.read()[-3000:]}"  # type: ignore[union-attr]
            lines.append(line)
            if pred(line):
                return
            assert time.monotonic() < deadline, what

    try:
        read_until(lambda s: s.startswith("UP"), "never connected")
        pg_cluster.stop("fast")
        try:
            spills = list(spill_dir.glob("*.spill.jsonl"))

            def full(_: str) -> bool:
                nonlocal spills
                spills = list(spill_dir.glob("*.spill.jsonl"))
                dropped = int(lines[-1].split()[1]) if lines[-1].startswith("DROPPED") else 0
                # more is waiting than the spill file can hold (800 points take well over
                # `limit` bytes there), so it has refused writes; its size may have stopped
                # anywhere below the limit, depending on how big the refused batch was
                return bool(spills) and dropped > 800

            read_until(full, "the spill file never filled")
            for _ in range(5):  # keep logging past the full spill file for a while
                read_until(lambda s: s.startswith("DROPPED"), "logging stopped")
            size = spills[0].stat().st_size
            assert size <= limit
            # no half line left behind: every line is one whole batch. The file may be
            # empty: when the first batch to spill was already bigger than `limit`, the
            # partial write was truncated back to nothing (without that it would hold
            # `limit` bytes of half a line)
            data = spills[0].read_bytes()
            assert data == b"" or data.endswith(b"\n")
            for line in data.splitlines():
                assert decode_batch(line) is not None, line[:200]
        finally:
            pg_cluster.start_again()
        stop_file.touch()
        read_until(lambda s: s.startswith("END"), "did not finish")
        err = child.communicate(timeout=120)[1]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err[-3000:]
    _, steps, dropped = lines[-1].split()
    assert dropped == "0"  # the spill file plus the in-memory reserve held everything
    assert "cannot write the spill file" in err, err[-3000:]
    assert "StoreWarning" in err
    _check_all(pg_fresh_url, "fullspill", int(steps))


# While the database is down: batch 1 fits the spill file, batch 2 (a large blob) does not
# (it is kept in memory), batch 3 fits again. Replayed, they must land in logging order.
ORDER_CHILD = textwrap.dedent(
    """
    import os, resource, signal, sys, time, warnings
    import deepscope
    url, go_file, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    warnings.simplefilter("ignore")
    run = deepscope.init(store=url, name="order", flush_interval=0.05)
    run.log_event("seq", "first", severity="info", step=0)
    run.log({"x": 0.0}, step=0)
    run.flush()
    run.log_event("seq", "second", severity="info", step=1)
    run.log_blob("image", "big", os.urandom(limit), ext="png", step=1)
    run.flush()
    run.log_event("seq", "third", severity="info", step=2)
    run.log({"x": 2.0}, step=2)
    run.flush()
    print("SPILLED", run.dropped, flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.01)
    run.finish()
    print("END", run.dropped, flush=True)
    """
)


def test_batches_replay_in_logging_order_when_one_did_not_fit_the_spill_file(
    pg_cluster: Any, pg_fresh_url: str, tmp_path: Path
) -> None:
    deepscope.init(store=pg_fresh_url, name="schema").finish()
    script, go = tmp_path / "child.py", tmp_path / "go"
    script.write_text(ORDER_CHILD)
    env = dict(os.environ, DEEPSCOPE_SPILL_DIR=str(tmp_path))
    pg_cluster.stop("fast")
    try:
        child = subprocess.Popen(
            [sys.executable, str(script), pg_fresh_url, str(go), "8192"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.startswith("SPILLED"), child.communicate(timeout=60)[1][-3000:]
        assert int(first.split()[1]) == 6  # nothing stored: 3 events, 2 points, 1 blob
    finally:
        pg_cluster.start_again()
    go.touch()
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0 and out.startswith("END 0"), err[-3000:]
    r = deepscope.store.open(pg_fresh_url).run("order")
    assert [e.message for e in r.events()] == ["first", "second", "third"]
    assert [len(r.read_blob(b)) for b in r.blobs("image")] == [8192]


ORPHAN_CHILD = textwrap.dedent(
    """
    import sys, warnings
    import deepscope
    url = sys.argv[1]
    warnings.simplefilter("ignore")
    run = deepscope.init(store=url, name="orphan", flush_interval=0.05)
    for step in range(100):
        run.log({"x": float(step)}, step=step)
    run.flush()  # returns: the points are spilled (the database is down)
    print("ACK", run.dropped, flush=True)
    sys.stdin.readline()  # killed here
    """
)


def test_points_spilled_by_a_killed_writer_reach_the_database_when_the_run_is_joined(
    pg_cluster: Any, pg_fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deepscope.init(store=pg_fresh_url, name="schema").finish()
    script = tmp_path / "child.py"
    script.write_text(ORPHAN_CHILD)
    monkeypatch.setenv("DEEPSCOPE_SPILL_DIR", str(tmp_path))
    pg_cluster.stop("fast")
    try:
        child = subprocess.Popen(
            [sys.executable, str(script), pg_fresh_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line == "ACK 100\n", child.communicate(timeout=60)[1][-3000:]
        child.kill()
        child.wait()
    finally:
        pg_cluster.start_again()
    assert list(tmp_path.glob("deepscope-pg-orphan-*.spill.jsonl"))
    with deepscope.init(store=pg_fresh_url, name="orphan", flush_interval=0.05) as run:
        run.log({"x": 100.0}, step=100)
    pts = deepscope.store.open(pg_fresh_url).run("orphan").scalars("x", max_points=1000)
    assert [p.step for p in pts] == list(range(101))
