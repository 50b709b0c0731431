"""PostgreSQL-only parts of the contract: reads identical to SQLite for the same data, the
dashboard served from a database with live updates, kill -9 durability, a dropped
connection replayed without loss or duplicates, and the password never shown."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import psycopg
import pytest
from starlette.testclient import TestClient

import deepscope
import deepscope.store
from _pg import PgCluster, wait_for
from deepscope.server.app import Settings, create_app
from deepscope.store.postgres.url import mask

pytestmark = [
    pytest.mark.usefixtures("pg_cluster"),
    pytest.mark.filterwarnings("ignore::deepscope.store.writer.StoreWarning"),
]


def _log_same(target: str) -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(size=6000).cumsum()
    values[[5, 900, 3001]] = [np.nan, np.inf, -np.inf]
    with deepscope.init(store=target, name="same", flush_interval=0.1) as run:
        for step, v in enumerate(values):
            zero = -0.0 if step % 3 else 0.0  # minimum and maximum are zeros of both signs
            run.log({"loss": float(v), "zeros": zero}, step=step * 3 - 5000)  # negative steps
            if step % 700 == 0:
                run.log_histogram("w", rng.normal(size=50), step=step)
                run.flush()  # several batches: the pyramid is merged across them


def test_postgres_reads_equal_sqlite_reads(tmp_path: Path, pg_fresh_url: str) -> None:
    _log_same(str(tmp_path))
    _log_same(pg_fresh_url)
    lite = deepscope.store.open(tmp_path).run("same")
    pg = deepscope.store.open(pg_fresh_url).run("same")

    def key(points: list[deepscope.store.protocol.ScalarPoint]) -> list[tuple[int, str]]:
        return [(p.step, repr(p.value)) for p in points]

    for kw in [{"max_points": 50}, {"max_points": 2000}, {"max_points": 7},
               {"max_points": 100, "start_step": -1000, "end_step": 4000},
               {"max_points": 64, "start_step": 2000}, {"max_points": 100_000}]:  # fmt: skip
        for tag in ("loss", "zeros"):
            assert key(pg.scalars(tag, **kw)) == key(lite.scalars(tag, **kw)), (tag, kw)
    for n in (3, 100):
        a, b = pg.histograms("w", max_points=n), lite.histograms("w", max_points=n)
        assert [(h.step, h.counts, h.edges) for h in a] == [(h.step, h.counts, h.edges) for h in b]
    assert [(t.tag, t.kind, t.count, t.first_step, t.last_step) for t in pg.tags()] == [
        (t.tag, t.kind, t.count, t.first_step, t.last_step) for t in lite.tags()
    ]


def test_dashboard_serves_a_postgres_store_with_live_updates(
    pg_fresh_url: str, tmp_path: Path
) -> None:
    run = deepscope.init(store=pg_fresh_url, name="live", config={"lr": 0.5})
    run.log({"loss": 1.0}, step=0)
    run.log_text("notes", "served from the database", step=0)
    run.flush()
    app = create_app(Settings(logdir=tmp_path, store_url=pg_fresh_url, poll_interval=0.1))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        runs = client.get("/api/runs").json()
        assert runs["total"] == 1 and runs["runs"][0]["config"] == {"lr": 0.5}
        assert runs["runs"][0]["status"] == "running"
        got = client.get("/api/scalars", params={"run": "live", "tag": "loss"}).json()
        assert [(p[0], p[2]) for p in got["points"]] == [(0, 1.0)]
        texts = client.get("/api/text", params={"run": "live", "tag": "notes"}).json()
        assert "served from the database" in str(texts)
        assert client.get("/api/scalars", params={"run": "nope", "tag": "x"}).status_code == 404
        state = app.state.deepscope
        before = state.store().versions(["live"])["live"]
        run.log({"loss": 0.5}, step=1)
        run.flush()
        stamps = state.poller().stamps(["live"])
        assert stamps["live"] == (before + 1,)  # what the SSE poller compares moved
    run.finish()


def test_kill9_loses_at_most_the_unflushed_batch_and_keeps_batches_whole(
    pg_fresh_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "flushed"
    script = textwrap.dedent(f"""
        import deepscope, time
        run = deepscope.init(store={pg_fresh_url!r}, name="k", flush_interval=0.05)
        step = 0
        while True:
            run.log({{"a": float(step), "b": float(step), "c": float(step)}}, step=step)
            if step % 50 == 49:
                run.flush()
                open({str(marker)!r}, "w").write(str(step))
            step += 1
            time.sleep(0.0005)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: marker.exists() and int(marker.read_text() or 0) >= 600, 60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    flushed = int(marker.read_text())
    reader = deepscope.store.open(pg_fresh_url).run("k")
    series = {t: [p.step for p in reader.scalars(t, max_points=10**6)] for t in "abc"}
    assert series["a"] == series["b"] == series["c"]  # one log() call is one atomic unit
    assert series["a"] == list(range(len(series["a"])))  # a prefix: no gap, no duplicate
    assert len(series["a"]) >= flushed + 1  # everything flushed is there
    assert reader.info().status == "interrupted"  # same machine: the process is gone


def test_dropped_connection_replays_without_loss_or_duplicates(
    pg_cluster: PgCluster, pg_fresh_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="deepscope")
    dbname = pg_fresh_url.rsplit("/", 1)[1]
    run = deepscope.init(store=pg_fresh_url, name="drop", flush_interval=0.05)
    for step in range(3000):
        run.log({"x": float(step)}, step=step)
        if step in (1000, 2000):
            run.flush()
            assert wait_for(lambda: run._writer.dropped == 0, 30)  # connected, all written
            assert pg_cluster.terminate_backends(dbname) >= 1  # the writer's connection
    run.flush()
    assert wait_for(lambda: run._writer.dropped == 0, 30)  # replayed from the spill
    run.finish()
    reader = deepscope.store.open(pg_fresh_url).run("drop")
    steps = [p.step for p in reader.scalars("x", max_points=10**6)]
    assert steps == list(range(3000))
    (tag,) = reader.tags()
    assert tag.count == 3000
    with psycopg.connect(pg_fresh_url) as conn:
        n = conn.execute("SELECT count(*) FROM deepscope.scalar").fetchone()
    assert n == (3000,)
    password = pg_cluster.password
    assert password not in caplog.text
    assert password not in repr(run) + repr(run._writer) + repr(deepscope.store.open(pg_fresh_url))
    assert mask(pg_fresh_url) in repr(run._writer) and "***" in mask(pg_fresh_url)


def test_unreachable_database_spills_then_replays(tmp_path: Path, pg_cluster: PgCluster) -> None:
    os.environ["DEEPSCOPE_SPILL_DIR"] = str(tmp_path)
    try:
        url = pg_cluster.fresh_database()
        closed = url.rsplit(":", 1)[0] + ":1/" + url.rsplit("/", 1)[1]  # nothing listens
        run = deepscope.init(store=closed, name="later", flush_interval=0.05)
        for step in range(100):
            run.log({"x": float(step), "y": math.nan}, step=step)
        run.flush()
        assert run.dropped == 200 and run.spill_path is not None and run.spill_path.exists()
        assert pg_cluster.password not in run.spill_path.name
        writer = run._writer
        writer.url = url  # the database comes back (here: at another address)
        writer._retry_at = 0.0
        run.log({"x": 100.0, "y": 0.0}, step=100)
        run.flush()
        assert run.dropped == 0 and not run.spill_path.exists()
        run.finish()
        reader = deepscope.store.open(url).run("later")
        assert [p.step for p in reader.scalars("x", max_points=1000)] == list(range(101))
    finally:
        del os.environ["DEEPSCOPE_SPILL_DIR"]


def test_a_batch_replayed_twice_is_stored_once(pg_fresh_url: str, tmp_path: Path) -> None:
    from deepscope.store.postgres.spill import append_batch, encode_batch, read_batches
    from deepscope.store.protocol import EventRecord, ScalarRecord

    run = deepscope.init(store=pg_fresh_url, name="once")
    records = [ScalarRecord("s", s, 1.0, (("x", float(s)), ("y", -0.0))) for s in range(50)]
    records.append(EventRecord("e", 3, 1.0, "info", "k", None, "hello"))
    spill = tmp_path / "replay.jsonl"
    append_batch(spill, encode_batch("0123456789abcdef0123456789abcdef", records))
    append_batch(spill, b'{"batch": "cut short')  # a line a crash cut off: skipped
    (batch,) = list(read_batches(spill))
    writer = run._writer
    with writer._io_lock:
        assert writer._write_batch(batch) is True
        assert writer._write_batch(batch) is False  # the same id again: nothing written
    run.finish()
    reader = deepscope.store.open(pg_fresh_url).run("once")
    assert [p.step for p in reader.scalars("x")] == list(range(50))
    assert {t.tag: t.count for t in reader.tags()} == {"x": 50, "y": 50}
    assert all(math.copysign(1.0, p.value) < 0 for p in reader.scalars("y"))  # -0.0 kept
    assert [e.message for e in reader.events()] == ["hello"]


def test_deepscope_serve_a_postgres_url_without_printing_the_password(
    pg_cluster: PgCluster, pg_fresh_url: str, tmp_path: Path
) -> None:
    import re

    import httpx

    with deepscope.init(store=pg_fresh_url, name="cli") as run:
        run.log({"loss": 0.25}, step=3)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from deepscope.cli import main; main()", "serve", pg_fresh_url,
         "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert pg_cluster.password not in line and ":***@" in line, line
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url is not None, line
        runs = httpx.get(url.group(0) + "/api/runs", timeout=30).json()
        assert [r["name"] for r in runs["runs"]] == ["cli"] and runs["runs"][0][
            "status"
        ] == "finished"
        points = httpx.get(url.group(0) + "/api/scalars", params={"run": "cli", "tag": "loss"},
                           timeout=30).json()["points"]  # fmt: skip
        assert [(p[0], p[2]) for p in points] == [(3, 0.25)]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert pg_cluster.password not in out
