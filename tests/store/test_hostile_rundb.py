"""THREATS.md S10: hostile or corrupt run.db files (views, triggers, truncation, not a
database, wrong types) never hang a reader or a writer, never hide the other runs, and
always fail with `UnreadableRunError` naming the run and the reason.

Operations that would hang without the fix run in a daemon thread joined with a timeout, so
a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import deepscope
import deepscope.store
from deepscope.errors import ReadDeadlineError, StoreError, UnreadableRunError
from deepscope.store import reader as reader_mod
from deepscope.store.schema import DB_NAME, connect_reader
from deepscope.store.writer import StoreWarning

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
HANG_LIMIT = 60.0  # seconds a call may take before the test calls it a hang


def _in_thread(fn: Callable[[], Any]) -> Any:
    """fn() in a daemon thread; its result, or re-raises its exception; fails on a hang."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(HANG_LIMIT)
    assert not t.is_alive(), f"{fn} hung"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _good_run(logdir: Path, name: str, n: int = 50) -> Path:
    run = deepscope.init(logdir=logdir, name=name, config={"lr": 0.1})
    for i in range(n):
        run.log({"loss": 1.0 / (i + 1), "acc": i / n})
    run.log_histogram("w", [0.0, 1.0, 2.0, 3.0], step=0, bins=3)
    run.log_event("nan", "a NaN", step=1)
    run.finish()
    return logdir / name / DB_NAME


def _tamper(db: Path, *sql: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    for s in sql:
        conn.execute(s)
    conn.close()


def _rollback_journal(db: Path) -> None:
    """Fold the WAL into the file and leave it a single-file database (for byte tampering)."""
    _tamper(db, "PRAGMA wal_checkpoint(TRUNCATE)", "PRAGMA journal_mode = DELETE")


def _all_reads(r: Any) -> list[Callable[[], Any]]:
    return [
        r.info,
        r.tags,
        lambda: r.scalars("loss"),
        lambda: r.histograms("w"),
        lambda: r.blobs("image"),
        r.events,
        r.version,
    ]


HOSTILE_SCHEMAS = {
    "view-shadowing-tag": [
        "DROP TABLE tag",
        "CREATE VIEW tag AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
        "SELECT x AS id, 'loss' AS name, 'scalar' AS kind, x AS count, 0 AS first_step, "
        "0 AS last_step FROM c",
    ],
    "view-shadowing-session": [
        "DROP TABLE session",
        f"CREATE VIEW session AS SELECT NULL AS parent, ({ENDLESS}) AS heartbeat, NULL AS ended,"
        " 'running' AS state, 1 AS pid, 'h' AS host, NULL AS proc_id",
    ],
    "extra-view": [f"CREATE VIEW spin AS {ENDLESS}"],
    "trigger": [f"CREATE TRIGGER spin AFTER INSERT ON scalar BEGIN SELECT ({ENDLESS}); END"],
    "altered-table": ["ALTER TABLE tag ADD COLUMN x TEXT DEFAULT 'y'"],
    "extra-index": ["CREATE INDEX evil ON scalar (printf('%.9999c', 'x'))"],
    "missing-table": ["DROP TABLE event"],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_SCHEMAS))
def test_S10_hostile_schema_is_refused_by_every_read_and_listed_unreadable(
    tmp_path: Path, case: str
) -> None:
    _good_run(tmp_path, "good")
    db = _good_run(tmp_path, "bad")
    _tamper(db, *HOSTILE_SCHEMAS[case])
    store = deepscope.store.open(tmp_path)
    r = store.run("bad")
    for read in _all_reads(r):
        with pytest.raises(UnreadableRunError) as err:
            _in_thread(read)
        assert err.value.run == "bad" and "deepscope" in err.value.reason
        assert not isinstance(err.value, ReadDeadlineError)  # refused up front, not timed out
    listed = {i.name: i for i in _in_thread(store.runs)}
    assert listed["good"].status == "finished" and listed["good"].error is None
    assert listed["bad"].status == "unreadable" and listed["bad"].error
    assert [p.step for p in store.run("good").scalars("loss")] == list(range(50))


def test_S10_recursive_view_read_has_deadline(tmp_path: Path) -> None:
    """The deadline itself: every statement of a reader connection is interrupted."""
    db = _good_run(tmp_path, "r")
    conn = connect_reader(db, deadline=0.3)
    with pytest.raises(sqlite3.OperationalError, match="interrupt"):
        _in_thread(lambda: conn.execute(ENDLESS).fetchall())
    conn.close()


def test_S10_read_past_deadline_is_refused_then_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = deepscope.init(logdir=tmp_path, name="big")
    for i in range(3000):
        run.log({"loss": float(i)})
    run.finish()
    _good_run(tmp_path, "good")
    monkeypatch.setattr(reader_mod, "_QUARANTINED", {})
    store = deepscope.store.open(tmp_path, read_deadline=0.0)  # every long statement: too long
    with pytest.raises(ReadDeadlineError, match="longer than"):
        store.run("big").scalars("loss", max_points=5000)
    # quarantined: refused at once, whatever the call, so it cannot hold a thread
    with pytest.raises(ReadDeadlineError, match="retry later"):
        store.run("big").info()
    listed = {i.name: i for i in store.runs()}
    assert listed["big"].status == "unreadable" and "retry later" in (listed["big"].error or "")
    assert listed["good"].status == "finished"
    monkeypatch.setattr(reader_mod, "_QUARANTINED", {})
    assert len(deepscope.store.open(tmp_path).run("big").scalars("loss", max_points=5000)) == 3000


def test_S10_45_requests_to_a_hostile_run_do_not_exhaust_threads(tmp_path: Path) -> None:
    _good_run(tmp_path, "good")
    _tamper(_good_run(tmp_path, "bad"), *HOSTILE_SCHEMAS["view-shadowing-tag"])
    store = deepscope.store.open(tmp_path)

    def request(i: int) -> str:
        try:
            store.run("bad").tags()
        except UnreadableRunError as exc:
            return exc.reason
        return "served"

    with ThreadPoolExecutor(8) as pool:
        reasons = _in_thread(lambda: list(pool.map(request, range(45))))
    assert len(reasons) == 45 and all("view" in r for r in reasons)
    assert {t.tag for t in store.run("good").tags()} == {"loss", "acc", "w"}


def test_S10_writer_refuses_to_join_a_store_with_a_trigger(tmp_path: Path) -> None:
    db = _good_run(tmp_path, "r")
    _tamper(db, *HOSTILE_SCHEMAS["trigger"])

    def join_and_log() -> None:
        run = deepscope.init(logdir=tmp_path, name="r")
        run.log({"loss": 1.0})
        run.flush()
        run.finish()

    with pytest.raises(StoreError, match="trigger"):
        _in_thread(join_and_log)
    # the same with a view in place of a table the writer inserts into
    _tamper(db, "DROP TRIGGER spin", *HOSTILE_SCHEMAS["view-shadowing-tag"])
    with pytest.raises(StoreError, match="view"):
        _in_thread(join_and_log)


def _truncate(db: Path) -> None:
    _rollback_journal(db)
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.truncate(size // 2)


def _not_a_database(db: Path) -> None:
    for p in db.parent.glob(DB_NAME + "*"):
        p.unlink()
    db.write_bytes(b"this is not a database\n" * 200)


def _garbage_pages(db: Path) -> None:
    _rollback_journal(db)
    data = bytearray(db.read_bytes())
    data[4096:] = bytes(len(data) - 4096)  # every page after the first zeroed
    db.write_bytes(bytes(data))


CORRUPT: dict[str, Callable[[Path], None]] = {
    "truncated": _truncate,
    "not-a-database": _not_a_database,
    "zeroed-pages": _garbage_pages,
    "heartbeat-text": lambda db: _tamper(db, "UPDATE session SET heartbeat = 'abc'"),
    "created-text": lambda db: _tamper(db, "UPDATE run SET created = 'yesterday'"),
    "state-blob": lambda db: _tamper(db, "UPDATE session SET state = x'00'"),
    "ended-blob": lambda db: _tamper(db, "UPDATE session SET ended = x'00'"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_S10_corrupt_run_is_listed_unreadable_and_every_other_run_served(
    tmp_path: Path, case: str
) -> None:
    for name in ("a", "c"):
        _good_run(tmp_path, name)
    CORRUPT[case](_good_run(tmp_path, "b"))
    store = deepscope.store.open(tmp_path)
    listed = _in_thread(store.runs)
    assert [i.name for i in listed] == ["a", "b", "c"]
    assert [i.status for i in listed] == ["finished", "unreadable", "finished"]
    assert listed[1].error and "b" not in (listed[0].error or "")
    with pytest.raises(UnreadableRunError) as err:
        store.run("b").info()
    assert err.value.run == "b" and err.value.reason == listed[1].error
    assert len(store.run("c").scalars("loss")) == 50


WRONG_TYPES = {
    "tag.count": ("UPDATE tag SET count = 'many'", "tags"),
    "tag.first_step": ("UPDATE tag SET first_step = 1.5", "tags"),
    "scalar.wall_time": ("UPDATE scalar SET wall_time = 'abc' WHERE id = 3", "scalars"),
    "scalar.value": ("UPDATE scalar SET value = x'01' WHERE id = 3", "scalars"),
    "histogram.edges": ("UPDATE histogram SET edges = x'0102'", "histograms"),
    "histogram.count": ("UPDATE histogram SET count = 'x'", "histograms"),
    "event.message": ("UPDATE event SET message = x'00'", "events"),
    "event.step": ("UPDATE event SET step = 'x'", "events"),
    "counter.version": ("UPDATE counter SET version = 'v'", "version"),
}


@pytest.mark.parametrize("case", sorted(WRONG_TYPES))
def test_S10_wrong_types_raise_unreadable_not_raw_errors(tmp_path: Path, case: str) -> None:
    sql, method = WRONG_TYPES[case]
    _tamper(_good_run(tmp_path, "r"), sql)
    r = deepscope.store.open(tmp_path).run("r")
    call = {
        "tags": r.tags,
        "scalars": lambda: r.scalars("loss"),
        "histograms": lambda: r.histograms("w"),
        "events": r.events,
        "version": r.version,
    }[method]
    with pytest.raises(UnreadableRunError, match=case.split(".")[0]):
        call()


def test_S10_symlinked_rundb_is_not_read(tmp_path: Path) -> None:
    outside = _good_run(tmp_path / "elsewhere", "secret")
    logdir = tmp_path / "logs"
    _good_run(logdir, "ok")
    (logdir / "link").mkdir()
    (logdir / "link" / DB_NAME).symlink_to(outside)
    store = deepscope.store.open(logdir)
    listed = {i.name: i for i in store.runs()}
    assert listed["link"].status == "unreadable" and "link" in (listed["link"].error or "")
    with pytest.raises(UnreadableRunError):
        store.run("link").scalars("loss")


@pytest.mark.parametrize("kind", ["fifo", "directory", "wal-fifo"])
def test_S10_writer_joining_a_special_run_db_names_the_real_reason(
    tmp_path: Path, kind: str
) -> None:
    """run.db (or its WAL) that is a FIFO or a directory: the warning says so, not 'free
    disk space', and the FIFO is never opened (that would block)."""
    run_dir = tmp_path / "r"
    if kind == "wal-fifo":
        _good_run(tmp_path, "r")
        os.mkfifo(run_dir / (DB_NAME + "-wal"))
    else:
        run_dir.mkdir()
        if kind == "fifo":
            os.mkfifo(run_dir / DB_NAME)
        else:
            (run_dir / DB_NAME).mkdir()

    def join_and_log() -> list[str]:
        with pytest.warns(StoreWarning) as record:
            run = deepscope.init(logdir=tmp_path, name="r")
            run.log({"loss": 1.0}, step=1)
            run.flush()
            run.finish()
        return [str(w.message) for w in record]

    messages = _in_thread(join_and_log)
    label = "directory" if kind == "directory" else "FIFO"
    assert any(f"is not a regular file (a {label})" in m for m in messages), messages
    assert not any("Free disk space" in m for m in messages), messages
