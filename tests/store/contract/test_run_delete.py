"""`Store.delete_run` on every backend: every row and blob of the run goes, nothing of any
other run does, a run still being written is refused unless forced, and names that look like
SQL are data. SQLite: symbolic links are never followed out of the log directory."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import deepscope
import deepscope.store
from deepscope.errors import NotFoundError, RunInUseError, StoreError
from deepscope.store.postgres.url import is_postgres_url

SQLITE_TABLES = ("run", "session", "tag", "scalar", "scalar_level", "histogram", "blob", "event")


def _write(target: str, name: str, *, n: int = 300) -> str:
    """A finished run with rows in every table: scalars, histograms, blobs, events, a graph."""
    image = (np.arange(4 * 5 * 3) % 255).astype(np.uint8).reshape(4, 5, 3)
    with deepscope.init(store=target, name=name, config={"name": name}) as run:
        for step in range(n):
            run.log({"loss": 1.0 / (step + 1), "acc": float(step)}, step=step)
        for step in range(3):
            run.log_histogram("w", np.array([0.0, float(step), np.nan]), step=step)
            run.log_text("notes", f"{name} text {step}", step=step)
        run.log_image("pic", image, step=0, dataformats="HWC")
        run.log_blob("attribution", "sal", name.encode() + b" blob", ext="png", step=1)
        run.log_event("nan", f"{name} event", severity="error", layer="fc", step=2)
        return run.name


# ---- counting rows, independently of the code under test ------------------------------------
def _pg_counts(url: str, name: str | None) -> dict[str, int]:
    """Rows per table of schema ``deepscope``: of run `name` (None: of every run, i.e. the
    table's total). Tables keyed by tag are counted through the run's tags."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'deepscope'"
            " AND table_type = 'BASE TABLE' ORDER BY table_name"
        ).fetchall()]  # fmt: skip
        out: dict[str, int] = {}
        for t in tables:
            if name is None:
                out[t] = conn.execute(f"SELECT count(*) FROM deepscope.{t}").fetchone()[0]
                continue
            cols = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'deepscope' AND table_name = %s", (t,)
            ).fetchall()}  # fmt: skip
            run = "(SELECT id FROM deepscope.run WHERE name = %s)"
            if t == "run":
                sql = "SELECT count(*) FROM deepscope.run WHERE name = %s"
            elif "run_id" in cols:
                sql = f"SELECT count(*) FROM deepscope.{t} WHERE run_id = {run}"
            elif "tag_id" in cols:
                sql = (f"SELECT count(*) FROM deepscope.{t} WHERE tag_id IN"
                       f" (SELECT id FROM deepscope.tag WHERE run_id = {run})")  # fmt: skip
            else:
                continue  # meta: not keyed by run
            out[t] = conn.execute(sql, (name,)).fetchone()[0]
    return out


def _sqlite_counts(root: Path, name: str) -> dict[str, int]:
    conn = sqlite3.connect(f"{(root / name / 'run.db').as_uri()}?mode=ro", uri=True)
    try:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in SQLITE_TABLES}
    finally:
        conn.close()


def _files(root: Path) -> dict[str, bytes]:
    """Every regular file under `root` (relative path -> bytes), WAL side files left out."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if not f.endswith(("-wal", "-shm")) and not p.is_symlink():
                out[str(p.relative_to(root))] = p.read_bytes()
    return out


def _snapshot(target: str, names: list[str]) -> dict[str, Any]:
    if is_postgres_url(target):
        return {n: _pg_counts(target, n) for n in names}
    return {n: _sqlite_counts(Path(target), n) for n in names}


# ---- tests ----------------------------------------------------------------------------------
def test_delete_removes_every_row_and_blob_and_nothing_else(target: str) -> None:
    victim = _write(target, "victim")
    keep = [_write(target, "keep-a", n=200), _write(target, "keep-b", n=50)]
    store = deepscope.store.open(target)
    kept_before = _snapshot(target, keep)
    if is_postgres_url(target):
        before = _pg_counts(target, victim)
        totals = _pg_counts(target, None)
        # the run has rows in every table keyed by it (the check below means something)
        assert all(before[t] > 0 for t in before if t not in ("scalar_level",)), before
        assert before["blob_data"] >= 5 and before["batch"] > 0 and before["scalar"] == 600
    else:
        assert _sqlite_counts(Path(target), victim)["scalar"] == 600
    store.run(victim).blob_path(store.run(victim).blobs("text")[0])  # a blob cached locally
    cache = store.run(victim).directory

    store.delete_run(victim)

    assert victim not in store.run_names() and store.count_runs() == 2
    assert [r.name for r in store.runs()] == sorted(keep)  # the listing drops it
    assert store.versions([victim, keep[0]])[victim] is None
    with pytest.raises(NotFoundError):
        store.run(victim)
    with pytest.raises(NotFoundError):
        store.delete_run(victim)  # a second deletion: unknown run
    assert _snapshot(target, keep) == kept_before  # other runs untouched, row for row
    if is_postgres_url(target):
        after = _pg_counts(target, victim)
        assert set(after.values()) == {0}, after
        now = _pg_counts(target, None)
        for table, total in totals.items():  # exactly the run's rows went, in every table
            assert now[table] == total - before.get(table, 0), table
        assert not cache.exists()  # the local blob cache of the run went too
    else:
        root = Path(target)
        assert not (root / victim).exists()
        assert sorted(os.listdir(root)) == sorted(keep)  # no trash folder left behind
    for name in keep:  # the others still read whole
        reader = store.run(name)
        assert reader.blobs("attribution") and reader.read_blob(reader.blobs("attribution")[0])
        assert reader.info().status == "finished"


def test_names_that_look_like_sql_are_data(target: str) -> None:
    hostile = _write(target, "'; DELETE FROM deepscope.run; --", n=20)
    other = _write(target, "other", n=20)
    store = deepscope.store.open(target)
    before = _snapshot(target, [other])
    for name in ["x'; DELETE FROM deepscope.run; --", "' OR '1'='1", "other' --", "../other",
                 "other/..", "%", "_", "", "."]:  # fmt: skip
        with pytest.raises(NotFoundError):
            store.delete_run(name)
    assert sorted(store.run_names()) == sorted([hostile, other])
    store.delete_run(hostile)
    assert store.run_names() == [other] and _snapshot(target, [other]) == before


def test_a_running_run_is_refused_unless_forced(target: str) -> None:
    run = deepscope.init(store=target, name="live", flush_interval=0.2)
    try:
        run.log({"x": 1.0}, step=0)
        run.flush()
        store = deepscope.store.open(target)
        assert store.run("live").info().status == "running"
        with pytest.raises(RunInUseError, match="still being written.*force"):
            store.delete_run("live")
        assert [p.value for p in store.run("live").scalars("x")] == [1.0]  # untouched
        store.delete_run("live", force=True)
        assert "live" not in store.run_names()
    finally:
        run.finish()  # the training loop never sees the store's fault


def test_an_ended_run_with_a_stale_heartbeat_is_deletable(target: str) -> None:
    name = _write(target, "done", n=5)
    store = deepscope.store.open(target)
    assert store.run(name).info().status == "finished"
    store.delete_run(name)
    assert store.count_runs() == 0


# ---- SQLite: links ----------------------------------------------------------------------------
@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    root = tmp_path / "logdir"
    root.mkdir()
    return root


def test_a_linked_run_folder_is_refused_and_its_target_kept(logdir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(str(outside), "precious", n=5)
    (logdir / "linked").symlink_to(outside / "precious", target_is_directory=True)
    before = _files(outside)
    store = deepscope.store.open(logdir)
    with pytest.raises(StoreError, match="symbolic link"):
        store.delete_run("linked")
    assert _files(outside) == before and (logdir / "linked").is_symlink()


def test_links_inside_a_run_are_removed_not_followed(logdir: Path, tmp_path: Path) -> None:
    name = _write(str(logdir), "r", n=5)
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "secret.txt").write_text("keep me")
    (outside / "sub" / "deep.txt").write_text("keep me too")
    (logdir / name / "blobs" / "evil").symlink_to(outside, target_is_directory=True)
    (logdir / name / "evil-file").symlink_to(outside / "secret.txt")
    before = _files(outside)
    deepscope.store.open(logdir).delete_run(name)
    assert not (logdir / name).exists() and os.listdir(logdir) == []
    assert _files(outside) == before


def test_a_linked_run_db_is_refused(logdir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _write(str(outside), "real", n=5)
    (logdir / "r").mkdir()
    (logdir / "r" / "run.db").symlink_to(outside / "real" / "run.db")
    with pytest.raises((StoreError, NotFoundError)):
        deepscope.store.open(logdir).delete_run("r")
    assert (outside / "real" / "run.db").is_file() and (logdir / "r" / "run.db").is_symlink()


def test_a_folder_that_is_no_run_is_not_deleted(logdir: Path) -> None:
    (logdir / "notes").mkdir()
    (logdir / "notes" / "todo.txt").write_text("x")
    with pytest.raises(NotFoundError):
        deepscope.store.open(logdir).delete_run("notes")
    assert (logdir / "notes" / "todo.txt").read_text() == "x"


def test_an_unreadable_run_needs_force(logdir: Path) -> None:
    (logdir / "junk").mkdir()
    (logdir / "junk" / "run.db").write_bytes(b"not a database at all" * 100)
    store = deepscope.store.open(logdir)
    with pytest.raises(RunInUseError, match="cannot be read"):
        store.delete_run("junk")
    store.delete_run("junk", force=True)
    assert not (logdir / "junk").exists()


def test_the_dashboard_stops_listing_a_deleted_run(target: str, tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from deepscope.server.app import Settings, create_app

    for name in ("gone", "stays"):
        _write(target, name, n=5)
    if is_postgres_url(target):
        settings = Settings(logdir=tmp_path / "cache", store_url=target, poll_interval=0.05)
    else:
        settings = Settings(logdir=Path(target))
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1:6100") as client:

        def listed() -> list[str]:
            got = client.get("/api/runs")
            assert got.status_code == 200, got.text
            return [r["name"] for r in got.json()["runs"]]

        assert listed() == ["gone", "stays"]
        assert client.get("/api/tags", params={"run": "gone"}).status_code == 200
        deepscope.store.open(target).delete_run("gone")
        assert listed() == ["stays"]
        assert client.get("/api/tags", params={"run": "gone"}).status_code == 404


def test_pg_a_deletion_that_fails_midway_deletes_nothing(pg_fresh_url: str) -> None:
    """A table sorted after all the others refuses the delete (a trigger): the transaction
    rolls back, every row of the run is still there, and the error names no password."""
    import psycopg

    from deepscope.store.postgres.url import password_of

    url = pg_fresh_url
    name = _write(url, "victim", n=40)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE deepscope.zz_blocker (run_id bigint)")
        conn.execute("INSERT INTO deepscope.zz_blocker SELECT id FROM deepscope.run")
        conn.execute(
            "CREATE FUNCTION deepscope.refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'blocked by the test'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE DELETE ON deepscope.zz_blocker"
            " FOR EACH ROW EXECUTE FUNCTION deepscope.refuse()"
        )
    before = _pg_counts(url, name)
    assert before["scalar"] == 80 and before["blob_data"] > 0 and before["zz_blocker"] == 1
    store = deepscope.store.open(url)
    with pytest.raises(StoreError, match="nothing was deleted.*blocked by the test") as err:
        store.delete_run(name)
    assert str(password_of(url)) not in str(err.value)
    assert _pg_counts(url, name) == before
    assert store.run(name).scalars("loss", max_points=1000)[-1].step == 39


def test_pg_a_run_deleted_while_training_logs_leaves_no_rows(pg_fresh_url: str) -> None:
    """`deepscope rm --force` while a training loop logs: the loop goes on, one warning says
    the run was deleted, logging continues into a new run of the same name (as a log
    directory's does), and no row of any table is left under the deleted run: a batch
    racing the deletion waits for it (the run row is locked), then finds the run gone."""
    import threading
    import warnings

    url = pg_fresh_url
    stop, steps = threading.Event(), [0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = deepscope.init(store=url, name="doomed", flush_interval=0.02)

        def train() -> None:
            while not stop.is_set():
                s = steps[0]
                run.log({"loss": 1.0 / (s + 1), "acc": float(s)}, step=s)
                if s % 25 == 0:
                    run.log_histogram("w", np.array([0.0, float(s)]), step=s)
                    run.log_event("tick", f"step {s}", severity="info", step=s)
                steps[0] = s + 1

        loop = threading.Thread(target=train)
        loop.start()
        try:
            store = deepscope.store.open(url)
            while "doomed" not in store.run_names() or not store.run("doomed").scalars("acc"):
                stop.wait(0.01)
            old_id = _run_id(url, "doomed")
            store.delete_run("doomed", force=True)
            at = steps[0]
            while steps[0] < at + 2000:  # logging goes on past the deletion
                stop.wait(0.01)
        finally:
            stop.set()
            loop.join(30)
        run.finish()
    assert not loop.is_alive()
    assert run.dropped == 0
    said = [str(w.message) for w in caught if "was deleted from" in str(w.message)]
    assert len(said) == 1 and "rm --force" in said[0] and "new run" in said[0]
    # every row in the database belongs to the run now named "doomed", a new one
    assert _run_id(url, "doomed") != old_id
    totals = {t: n for t, n in _pg_counts(url, None).items() if t != "meta"}
    assert totals == _pg_counts(url, "doomed")
    # which holds every step from the first batch after the deletion to the last one
    got = [int(p.value) for p in store.run("doomed").scalars("acc", max_points=10**7)]
    assert got and got[0] > 0 and got == list(range(got[0], steps[0]))
    assert store.run("doomed").info().status == "finished"


def _run_id(url: str, name: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT id FROM deepscope.run WHERE name = %s", (name,)).fetchone()
    assert row is not None
    return int(row[0])
