"""THREATS S10 at the server: corrupt, hostile and symlinked ``run.db`` files in a log folder.

Every good run stays listed and served; a bad run is listed as ``"unreadable"`` with the
reason; a hostile run cannot take the server's worker threads; a ``run.db`` (or run folder)
that is a link out of the log folder is never served.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx
import pytest
from server_support import BASE, SECRET_MARK, strict_loads
from starlette.testclient import TestClient

import deepscope
from deepscope.server.app import Settings, create_app
from deepscope.server.gate import ReadGate, ReadTimeoutError, RunBusyError
from deepscope.server.runner import start_in_thread
from deepscope.server.state import AppState

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c"


def _good(logdir: Path, name: str, tag: str = "loss") -> Path:
    with deepscope.init(logdir=logdir, name=name) as run:
        for step in range(3):
            run.log({tag: step / 2}, step=step)
    return logdir / name / "run.db"


def _sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        for s in statements:
            conn.execute(s)
    finally:
        conn.close()


def _corrupt_logdir(root: Path) -> dict[str, str]:
    """Good runs g0..g4 plus one of each kind of bad run; returns bad name -> kind."""
    for i in range(5):
        _good(root, f"g{i}")
    template = _good(root, "template")
    data = template.read_bytes()
    shutil.rmtree(root / "template")
    bad = {"notdb": "not a database", "truncated": "truncated", "emptyish": "garbage header",
           "wrongtype": "heartbeat='abc'", "hostile": "recursive VIEW"}  # fmt: skip
    for name in bad:
        (root / name).mkdir()
    (root / "notdb" / "run.db").write_bytes(b"this is not a database at all\n" * 200)
    (root / "truncated" / "run.db").write_bytes(data[: len(data) // 3])
    (root / "emptyish" / "run.db").write_bytes(b"SQLite format 3\x00" + b"\xff" * 84)
    (root / "wrongtype" / "run.db").write_bytes(data)
    _sql(root / "wrongtype" / "run.db", "UPDATE session SET heartbeat = 'abc'")
    (root / "hostile" / "run.db").write_bytes(data)
    _sql(
        root / "hostile" / "run.db",
        "DROP TABLE session",
        f"CREATE VIEW session(id, parent, pid, host, started, heartbeat, ended, state) AS "
        f"SELECT x, NULL, 1, 'h', 0.0, 0.0, NULL, 'running' FROM ({ENDLESS})",
        "DROP TABLE tag",
        f"CREATE VIEW tag(id, name, kind, count, first_step, last_step) AS "
        f"SELECT x, 'loss', 'scalar', 1, 0, 0 FROM ({ENDLESS})",
    )
    return bad


@pytest.fixture(scope="module")
def bad_logdir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("badlogdir")
    return root, _corrupt_logdir(root)


@pytest.fixture()
def fast_client(bad_logdir: tuple[Path, dict[str, str]]) -> Iterator[TestClient]:
    settings = Settings(logdir=bad_logdir[0], read_deadline=0.5, read_wait=0.5, request_deadline=2)
    with TestClient(create_app(settings), base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def test_S10_corrupt_run_is_listed_as_unreadable(
    fast_client: TestClient, bad_logdir: tuple[Path, dict[str, str]]
) -> None:
    response = fast_client.get("/api/runs")
    assert response.status_code == 200, response.text
    body = strict_loads(response.text)
    rows = {r["name"]: r for r in body["runs"]}
    assert body["total"] == 5 + len(bad_logdir[1])
    for i in range(5):
        assert rows[f"g{i}"]["status"] == "finished" and "error" not in rows[f"g{i}"]
    for name in bad_logdir[1]:
        assert rows[name]["status"] == "unreadable", (name, rows[name])
        assert isinstance(rows[name]["error"], str) and rows[name]["error"], name
        assert "Traceback" not in rows[name]["error"]


def test_S10_good_runs_are_served_next_to_bad_ones(
    fast_client: TestClient, bad_logdir: tuple[Path, dict[str, str]]
) -> None:
    good = strict_loads(fast_client.get("/api/scalars?run=g0&tag=loss").text)
    assert [p[2] for p in good["points"]] == [0.0, 0.5, 1.0]
    tags = strict_loads(fast_client.get("/api/tags?run=g1&run=notdb&run=truncated").text)
    assert {t["run"] for t in tags["tags"]} == {"g1"}
    for name in bad_logdir[1]:
        response = fast_client.get(f"/api/scalars?run={name}&tag=loss")
        assert response.status_code in (200, 404, 422, 503), (name, response.status_code)
        if response.status_code != 200:  # wrongtype's scalars are fine; its heartbeat is not
            assert set(strict_loads(response.text)) == {"error"}


def test_S10_gate_bounds_threads_held_by_one_run() -> None:
    """A read that never ends (stand-in for any slow query the store cannot see) holds at
    most `per_run` threads; more requests for that run are refused, other runs still read."""
    release = threading.Event()
    started: list[str] = []

    def read(run: str) -> str:
        started.append(run)
        if run == "evil":
            release.wait(10)
        return run

    gate = ReadGate(per_run=3, wait=0.3, deadline=0.5, threads=8)
    outcomes: list[str] = []

    async def main() -> None:
        async def evil() -> None:
            try:
                await gate.call(["evil"], read, "evil")
                outcomes.append("ok")
            except (RunBusyError, ReadTimeoutError) as exc:
                outcomes.append(type(exc).__name__)

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(evil)
            await anyio.sleep(0.05)
            assert await gate.call(["good"], read, "good") == "good"
        assert gate.in_flight("evil") == 3  # abandoned reads keep their slots while they run

    try:
        anyio.run(main)
    finally:
        release.set()
    assert started.count("evil") == 3 and started.count("good") == 1
    assert sorted(set(outcomes)) == ["ReadTimeoutError", "RunBusyError"]
    assert outcomes.count("ReadTimeoutError") == 3


def test_S10_a_read_given_up_before_its_thread_starts_frees_its_slot() -> None:
    """A request that goes away (a closed tab, a deadline) while its read still waits for a
    thread: the gate frees the run's slot and the server goes on. It used to take its own
    lock twice on the event loop's thread, which hung the whole dashboard (seen as a page
    that never loaded in tests/e2e/test_run_groups.py)."""
    release = threading.Event()

    def block() -> str:
        release.wait(10)
        return "slow"

    gate = ReadGate(per_run=4, wait=1.0, deadline=5.0, threads=1)  # one thread: the next waits
    done: list[str] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(gate.call, ["a"], block)
            await anyio.sleep(0.05)  # the only thread is taken
            with anyio.move_on_after(0.1):  # given up while still waiting for a thread
                await gate.call(["b"], block)
            done.append("given up")
            assert gate.in_flight("b") == 0  # its slot is free again
            release.set()
        done.append("finished")

    loop = threading.Thread(target=anyio.run, args=(main,), daemon=True)
    loop.start()
    loop.join(10)
    release.set()
    assert not loop.is_alive(), "the event loop hung"
    assert done == ["given up", "finished"]


def test_S10_hostile_run_does_not_exhaust_the_server(
    bad_logdir: tuple[Path, dict[str, str]],
) -> None:
    settings = Settings(logdir=bad_logdir[0], read_deadline=1.0, read_wait=1.0, request_deadline=3)
    server = start_in_thread(settings)
    client = httpx.Client(base_url=server.url, limits=httpx.Limits(max_connections=60), timeout=30)
    try:
        with ThreadPoolExecutor(50) as pool:
            futures = [
                pool.submit(client.get, "/api/scalars?run=hostile&tag=loss") for _ in range(50)
            ]
            health = client.get("/api/health", timeout=5)
            good = client.get("/api/scalars?run=g2&tag=loss", timeout=5)
            statuses = [f.result().status_code for f in futures]
        assert health.status_code == 200 and strict_loads(health.text)["ok"] is True
        assert [p[2] for p in strict_loads(good.text)["points"]] == [0.0, 0.5, 1.0]
        assert all(s in (422, 503) for s in statuses), statuses
        assert client.get("/api/runs", timeout=10).status_code == 200
    finally:
        client.close()
        server.stop()


@pytest.fixture()
def linked_logdir(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret_db = _good(outside, "secret", tag=SECRET_MARK)
    root = tmp_path / "logs"
    root.mkdir()
    _good(root, "fine")
    (root / "evil").mkdir()
    (root / "evil" / "run.db").symlink_to(secret_db)  # file link out of the folder
    (root / "evildir").symlink_to(secret_db.parent, target_is_directory=True)  # folder link
    (root / "inside").symlink_to(root / "fine", target_is_directory=True)  # stays inside: ok
    return root


@pytest.mark.parametrize("name", ["evil", "evildir"])
def test_S10_symlinked_run_db_outside_the_logdir_is_not_served(
    linked_logdir: Path, name: str
) -> None:
    app = create_app(Settings(logdir=linked_logdir))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        for route in (f"/api/scalars?run={name}&tag={SECRET_MARK}", f"/api/tags?run={name}",
                      f"/api/events?run={name}", f"/api/graphs?run={name}"):  # fmt: skip
            response = client.get(route)
            assert response.status_code == 404, (route, response.status_code)
            assert SECRET_MARK not in response.text
        rows = {r["name"]: r for r in strict_loads(client.get("/api/runs").text)["runs"]}
        assert rows[name]["status"] == "unreadable" and "outside" in rows[name]["error"]
        assert rows["fine"]["status"] == "finished" and rows["inside"]["status"] == "finished"
        ok = strict_loads(client.get("/api/scalars?run=inside&tag=loss").text)
        assert len(ok["points"]) == 3


def test_S10_live_stream_never_reads_a_run_db_outside_the_logdir(linked_logdir: Path) -> None:
    """A stream may follow every listed run (unreadable ones too, so one bad run does not
    break live updates of the others), but the poller reads no file outside the folder."""
    state = AppState(Settings(logdir=linked_logdir))
    poller = state.poller()
    poller.subscribe(["evil", "evildir", "fine"])
    anyio.run(poller.wait_tick, 5.0)
    assert poller.versions["evil"] is None and poller.versions["evildir"] is None
    assert (poller.versions["fine"] or 0) >= 1 and poller.queries == 1


def test_S10_run_db_that_is_a_fifo_or_directory_is_listed_with_the_real_reason(
    tmp_path: Path,
) -> None:
    """Not 'outside the log folder (a symbolic link)': the run.db is not a regular file. The
    FIFO is never opened (a read would block this test, and the server)."""
    _good(tmp_path, "fine")
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / "run.db")
    (tmp_path / "dir" / "run.db").mkdir(parents=True)
    app = create_app(Settings(logdir=tmp_path, read_deadline=0.5, request_deadline=2))
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        rows = {r["name"]: r for r in strict_loads(client.get("/api/runs").text)["runs"]}
        for name, kind in (("fifo", "FIFO"), ("dir", "directory")):
            assert rows[name]["status"] == "unreadable"
            assert f"not a regular file (a {kind})" in rows[name]["error"], rows[name]
            assert "outside" not in rows[name]["error"]
            assert client.get(f"/api/tags?run={name}").status_code == 404
        assert rows["fine"]["status"] == "finished"
