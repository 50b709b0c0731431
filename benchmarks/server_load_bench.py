"""Dashboard server under load (THREATS D8): ``/api/runs`` latency idle vs 100 SSE streams.

A log folder of ``RUNS`` runs (copies of one small run.db) is served by a real server on
loopback. Figures:

- ``runs_idle_ms``: median latency of ``/api/runs`` (first page, cached list) with no stream;
- ``runs_under_streams_ms``: the same with ``STREAMS`` SSE streams open, each following
  ``RUNS`` runs (the incident: 4-6 s before the shared poller);
- ``first_pages_8_concurrent_s``: wall time of 8 concurrent first pages of ``BIG`` runs on a
  cold server (the incident: 6 s each), and ``info_reads`` (run infos read for them: once
  per run, not 8 times);
- ``streams_connect_s``: time to open every stream; ``polls`` / ``version_queries`` made
  while the streams were open (one poller; an unchanged run is queried once).

Run: ``python benchmarks/server_load_bench.py`` prints one JSON line last.
"""

from __future__ import annotations

import json
import shutil
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

import deepscope
from deepscope.server.runner import RunningServer, start_in_thread
from deepscope.server.settings import Settings
from deepscope.server.state import AppState

RUNS = 100
STREAMS = 100
BIG = 5000
SAMPLES = 20


def make_logdir(root: Path, n: int) -> Path:
    """`n` runs: one written with deepscope, the others copies of its run.db."""
    root.mkdir(parents=True, exist_ok=True)
    with deepscope.init(logdir=root, name="r0000", config={"lr": 0.1}) as run:
        for step in range(50):
            run.log({"loss": 1 / (step + 1)}, step=step)
    for i in range(1, n):
        (root / f"r{i:04d}").mkdir()
        shutil.copyfile(root / "r0000" / "run.db", root / f"r{i:04d}" / "run.db")
    return root


def _state(server: RunningServer) -> AppState:
    state: AppState = server.app.state.deepscope
    return state


def median_ms(client: httpx.Client, path: str) -> float:
    client.get(path)  # warm
    times = []
    for _ in range(SAMPLES):
        t = time.perf_counter()
        assert client.get(path).status_code == 200
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1000, 2)


def open_stream(url: str, target: str) -> socket.socket:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    return sock


def wait_connected(sock: socket.socket) -> None:
    data = b""
    while b": connected" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(data[:200].decode(errors="replace"))
        data += chunk


def streams_figures(root: Path) -> dict[str, Any]:
    server = start_in_thread(Settings(logdir=root))
    out: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            out["runs_idle_ms"] = median_ms(client, "/api/runs")
            query = "&".join(f"run=r{i:04d}" for i in range(RUNS))
            t = time.perf_counter()
            socks = [open_stream(server.url, f"/api/stream?{query}") for _ in range(STREAMS)]
            for s in socks:
                wait_connected(s)
            out["streams_connect_s"] = round(time.perf_counter() - t, 2)
            time.sleep(2)  # let the poller run with every stream open
            out["runs_under_streams_ms"] = median_ms(client, "/api/runs")
            poller = _state(server).poller()
            out.update(polls=poller.polls, version_queries=poller.queries,
                       max_polls_in_flight=poller.max_in_flight)  # fmt: skip
            for s in socks:
                s.close()
    finally:
        server.stop()
    return out


def first_pages_figures(root: Path) -> dict[str, Any]:
    server = start_in_thread(Settings(logdir=root))
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                pages = list(pool.map(lambda _: client.get("/api/runs"), range(8)))
            wall = time.perf_counter() - t
            assert all(p.status_code == 200 and p.json()["total"] == BIG for p in pages)
            warm = median_ms(client, "/api/runs")
        listing = _state(server).listing()
        return {"first_pages_8_concurrent_s": round(wall, 2), "info_reads": listing.computed,
                "runs_5000_warm_ms": warm}  # fmt: skip
    finally:
        server.stop()


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        figures: dict[str, Any] = {"runs": RUNS, "streams": STREAMS, "big": BIG}
        figures.update(streams_figures(make_logdir(Path(tmp) / "hundred", RUNS)))
        figures.update(first_pages_figures(make_logdir(Path(tmp) / "big", BIG)))
    return figures


if __name__ == "__main__":
    print(json.dumps(main()))
