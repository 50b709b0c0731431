"""Readers polling while a writer commits (S3) and two writers doing read-then-write (S4):
no partial batch is ever visible, no error reaches anyone, and the WAL stays bounded."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import deepscope
import deepscope.store
from deepscope.store.schema import connect_reader, connect_writer
from deepscope.store.writer import WriterOptions

K = 10  # tags per step


def test_readers_polling_during_100k_points_see_whole_batches_and_the_wal_stays_bounded(
    tmp_path: Path,
) -> None:
    run = deepscope.init(logdir=tmp_path, name="r", flush_interval=0.02)
    # a small threshold so the bound is exercised with 100k points
    run._writer.options = WriterOptions(flush_interval=0.02, checkpoint_bytes=512 * 1024)
    db = tmp_path / "r" / "run.db"
    wal = db.with_name("run.db-wal")
    stop = threading.Event()
    errors: list[BaseException] = []
    wal_max = [0]
    polls = [0]

    def poll_snapshot(hold: float) -> None:
        # long, overlapping read transactions: the worst case for checkpoints
        try:
            while not stop.is_set():
                conn = connect_reader(db)
                try:
                    conn.execute("BEGIN")
                    rows = conn.execute(
                        "SELECT t.count, COUNT(s.id), MIN(s.step), MAX(s.step) FROM tag t "
                        "LEFT JOIN scalar s ON s.tag_id = t.id GROUP BY t.id"
                    ).fetchall()
                    per_step = conn.execute(
                        "SELECT COUNT(*) FROM (SELECT step FROM scalar GROUP BY step "
                        f"HAVING COUNT(*) != {K})"
                    ).fetchone()[0]
                    time.sleep(hold)
                    conn.execute("COMMIT")
                finally:
                    conn.close()
                assert per_step == 0, "a reader saw part of a batch"
                assert len({r[0] for r in rows}) <= 1 and all(r[0] == r[1] for r in rows)
                polls[0] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def poll_api() -> None:
        try:
            store = deepscope.store.open(tmp_path)
            while not stop.is_set():
                r = store.run("r")
                pts = r.scalars("t0", max_points=100)
                assert len(pts) <= 100
                r.tags()
                r.version()
                try:
                    wal_max[0] = max(wal_max[0], wal.stat().st_size)
                except FileNotFoundError:
                    pass
                time.sleep(0.01)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=poll_snapshot, args=(h,)) for h in (0.2, 0.3, 0.05)]
    threads += [threading.Thread(target=poll_api)]
    for t in threads:
        t.start()
    n_steps = 100_000 // K
    for step in range(n_steps):
        run.log({f"t{j}": float(step) for j in range(K)}, step=step)
        if step % 500 == 0:
            run.flush()
    run.flush()
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)
    run.finish()
    assert not errors, errors[0]
    assert polls[0] > 5
    total = sqlite3.connect(db).execute("SELECT COUNT(*) FROM scalar").fetchone()[0]
    assert total == 100_000
    data_bytes = db.stat().st_size
    print(f"max WAL {wal_max[0] / 1e6:.1f} MB for a {data_bytes / 1e6:.1f} MB database")
    assert wal_max[0] < 8 * 1024 * 1024
    assert wal_max[0] < data_bytes  # without active checkpoints it grows like the data


def _read_then_write(db: Path, begin: str, seconds: float, errors: list[str], n: list[int]) -> None:
    conn = connect_writer(db)  # busy_timeout 10 s, autocommit mode
    conn.execute("CREATE TABLE IF NOT EXISTS ledger (step INTEGER PRIMARY KEY)")
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn.execute(begin)
            last = conn.execute("SELECT coalesce(MAX(step), -1) FROM ledger").fetchone()[0]
            conn.execute("INSERT INTO ledger (step) VALUES (?)", (last + 1,))
            conn.execute("COMMIT")
            n[0] += 1
        except sqlite3.OperationalError as exc:
            errors.append(str(exc))
            if conn.in_transaction:
                conn.execute("ROLLBACK")
    conn.close()


def _two_writers(db: Path, begin: str, seconds: float) -> tuple[list[str], int]:
    connect_writer(db).execute("CREATE TABLE IF NOT EXISTS ledger (step INTEGER PRIMARY KEY)")
    errors: list[str] = []
    n = [0]
    threads = [
        threading.Thread(target=_read_then_write, args=(db, begin, seconds, errors, n))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors, n[0]


def test_two_writers_reading_then_writing_with_begin_immediate_never_fail(tmp_path: Path) -> None:
    errors, n = _two_writers(tmp_path / "run.db", "BEGIN IMMEDIATE", 3.0)
    assert errors == []
    assert n > 50
    rows = sqlite3.connect(tmp_path / "run.db").execute("SELECT COUNT(*), MAX(step) FROM ledger")
    assert rows.fetchone() == (n, n - 1)  # no lost update either


def test_begin_deferred_reproduces_busy_snapshot(tmp_path: Path) -> None:
    """The regression this guards: a deferred read-then-write fails at once, busy_timeout
    notwithstanding (SQLITE_BUSY_SNAPSHOT)."""
    errors: list[str] = []
    for _ in range(5):
        errors, _n = _two_writers(tmp_path / "run.db", "BEGIN DEFERRED", 2.0)
        if errors:
            break
    assert errors and all("locked" in e or "busy" in e for e in errors)
