"""THREATS D8 against a real server: many SSE streams, many runs, half-open connections.

Functional checks, not timings: one poll in flight however many streams are open, each
unchanged run queried once, the run list read once per change, and a connection that never
finishes its request head closed by the server.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from server_support import strict_loads

import deepscope
from deepscope.server.runner import RunningServer, start_in_thread
from deepscope.server.settings import Settings
from deepscope.server.state import AppState

N_RUNS = 100
STREAM_RUNS = 20  # runs per stream here (the benchmark opens 100 x 100)


@pytest.fixture(scope="module")
def many_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """N_RUNS finished runs (copies of one run.db: the server reads each on its own)."""
    root = tmp_path_factory.mktemp("many")
    with deepscope.init(logdir=root, name="r000") as run:
        run.log({"loss": 1.0}, step=0)
    for i in range(1, N_RUNS):
        (root / f"r{i:03d}").mkdir()
        shutil.copyfile(root / "r000" / "run.db", root / f"r{i:03d}" / "run.db")
    return root


def _state(server: RunningServer) -> AppState:
    state: AppState = server.app.state.deepscope
    return state


def _open_stream(url: str, target: str) -> socket.socket:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=20)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    return sock


def _read_until(sock: socket.socket, mark: bytes) -> bytes:
    data = b""
    while mark not in data:
        chunk = sock.recv(65536)
        assert chunk, data[:300]
        data += chunk
    return data


@pytest.fixture()
def server(many_runs: Path) -> Iterator[RunningServer]:
    running = start_in_thread(Settings(logdir=many_runs, poll_interval=0.05, ping_interval=5))
    try:
        yield running
    finally:
        running.stop()


def test_D8_one_shared_poller_for_100_streams(server: RunningServer) -> None:
    query = "&".join(f"run=r{i:03d}" for i in range(STREAM_RUNS))
    streams = [_open_stream(server.url, f"/api/stream?{query}") for _ in range(100)]
    try:
        for sock in streams:
            head = _read_until(sock, b": connected")
            assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head
        poller = _state(server).poller()
        polls = poller.polls
        while poller.polls < polls + 5:  # let it poll a few more times with every stream open
            time.sleep(0.05)
        assert poller.streams == 100 * STREAM_RUNS
        assert poller.max_in_flight == 1  # one poll at a time, shared by every stream
        assert poller.queries == STREAM_RUNS  # unchanged runs are stat'ed, never queried again
        with httpx.Client(base_url=server.url, timeout=10) as client:
            body = strict_loads(client.get("/api/runs?limit=1000").text)
            assert body["total"] == N_RUNS and len(body["runs"]) == N_RUNS
            assert strict_loads(client.get("/api/health").text)["ok"] is True
    finally:
        for sock in streams:
            sock.close()
    deadline = time.monotonic() + 10
    while poller.streams and time.monotonic() < deadline:  # closed streams unsubscribe
        time.sleep(0.05)
    assert poller.streams == 0 and not poller.versions


def test_D8_run_list_is_read_once_per_change(server: RunningServer, many_runs: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        with ThreadPoolExecutor(8) as pool:  # 8 concurrent first pages
            pages = list(pool.map(lambda _: client.get("/api/runs?limit=1000"), range(8)))
        assert all(strict_loads(p.text)["total"] == N_RUNS for p in pages)
        listing = _state(server).listing()
        assert listing.computed == N_RUNS and listing.scans == 1
        client.get("/api/runs?limit=1000")
        assert listing.computed == N_RUNS and listing.scans == 1  # nothing changed

        db = many_runs / "r007" / "run.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("UPDATE run SET config = '{\"lr\": 3}' WHERE id = 1")
        conn.close()
        rows = {r["name"]: r for r in strict_loads(client.get("/api/runs?limit=1000").text)["runs"]}
        assert rows["r007"]["config"] == {"lr": 3} and listing.computed == N_RUNS + 1

        (many_runs / "r100").mkdir()
        shutil.copyfile(db, many_runs / "r100" / "run.db")
        try:
            body = strict_loads(client.get("/api/runs?filter=r100").text)
            assert [r["name"] for r in body["runs"]] == ["r100"] and listing.scans == 2
        finally:
            shutil.rmtree(many_runs / "r100")
        assert strict_loads(client.get("/api/runs").text)["total"] == N_RUNS


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


@pytest.fixture()
def strict_server(many_runs: Path) -> Iterator[RunningServer]:
    running = start_in_thread(Settings(logdir=many_runs, header_timeout=1.0, keep_alive=1.0))
    try:
        yield running
    finally:
        running.stop()


def test_D8_partial_request_line_is_closed(strict_server: RunningServer) -> None:
    host, port = strict_server.url.split("//", 1)[1].rsplit(":", 1)
    silent = socket.create_connection((host, int(port)))
    silent.sendall(b"GET /api/hea")  # and never more
    trickle = socket.create_connection((host, int(port)))
    started = time.monotonic()
    closed = False
    try:  # one header byte every 0.2 s: an absolute deadline still closes it
        for byte in (
            b"GET /api/health HTTP/1.1\r\nHost: " + host.encode() + b"\r\nX-A: " + b"a" * 60
        ):
            trickle.sendall(bytes([byte]))
            time.sleep(0.2)
            if time.monotonic() - started > 6:
                break
    except OSError:
        closed = True
    assert closed or _closed_within(trickle, 3)
    assert _closed_within(silent, 5)
    with httpx.Client(base_url=strict_server.url, timeout=5) as client:  # others still served
        assert client.get("/api/health").status_code == 200
    silent.close()
    trickle.close()


def test_D8_idle_keep_alive_connection_is_closed(strict_server: RunningServer) -> None:
    host, port = strict_server.url.split("//", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(f"GET /api/health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    assert _read_until(sock, b'"ok":true').startswith(b"HTTP/1.1 200")
    assert _closed_within(sock, 4)
    sock.close()


def test_D8_settings_reach_uvicorn() -> None:
    from deepscope.server.protocol import HeadTimeoutH11Protocol
    from deepscope.server.runner import make_server

    server = make_server(Settings(logdir=Path(os.curdir), header_timeout=3.0, keep_alive=2.0))
    protocol = server.config.http
    assert isinstance(protocol, type) and issubclass(protocol, HeadTimeoutH11Protocol)
    assert protocol.header_timeout == 3.0 and server.config.timeout_keep_alive == 2
    assert server.config.limit_concurrency == 512


@pytest.fixture()
def slow_body_server(many_runs: Path) -> Iterator[RunningServer]:
    running = start_in_thread(Settings(logdir=many_runs, body_timeout=1.0, keep_alive=30.0))
    try:
        yield running
    finally:
        running.stop()


def test_D8_slow_request_body_gets_408_and_is_closed(slow_body_server: RunningServer) -> None:
    host, port = slow_body_server.url.split("//", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    head = (
        f"POST /api/projector/project HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    )
    sock.sendall(head.encode() + b'{"run": ')  # and the other 192 bytes never come
    answer = _read_until(sock, b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
    assert b"connection: close" in answer.lower()
    assert _closed_within(sock, 5)  # by the server at once, not by the 30 s keep-alive
    sock.close()
    with httpx.Client(base_url=slow_body_server.url, timeout=5) as client:  # others served
        assert client.get("/api/health").status_code == 200


def test_D8_a_whole_body_in_time_is_not_cut(slow_body_server: RunningServer) -> None:
    with httpx.Client(base_url=slow_body_server.url, timeout=10) as client:
        got = client.post("/api/projector/project", content=b"{not json")
    assert got.status_code == 400, got.text  # the handler read the body and judged it
