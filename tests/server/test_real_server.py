"""End to end against real uvicorn servers on free loopback ports: raw-socket traversal,
server-sent events, and the `deepscope serve` command (bind address, token, port taken)."""

from __future__ import annotations

import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from server_support import SECRET_MARK, Logged, strict_loads

import deepscope
from deepscope.server.runner import serve_in_thread
from deepscope.server.settings import Settings


@pytest.fixture()
def server(logged: Logged) -> Iterator[str]:
    url, stop = serve_in_thread(Settings(logdir=logged.logdir, poll_interval=0.05))
    try:
        yield url
    finally:
        stop()


def raw_get(url: str, target: str, host: str | None = None) -> tuple[int, str]:
    """Send `target` byte for byte (no client-side normalisation of '..' or '%2e')."""
    hostport = url.split("//", 1)[1]
    h, port = hostport.rsplit(":", 1)
    with socket.create_connection((h, int(port)), timeout=5) as s:
        s.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host or hostport}\r\nConnection: close\r\n\r\n"
            .encode("latin-1")
        )  # fmt: skip
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 400
    return status, body.decode("utf-8", errors="replace")


RAW_TARGETS = [
    "/../../../../etc/passwd",
    "/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/..%5c..%5c..%5cetc%5cpasswd",
    "/..\\..\\..\\etc\\passwd",
    "//etc/passwd",
    "//proc/self/root/etc/passwd",
    "/file:///etc/passwd",
    "/a#/../../../../etc/passwd",
    "/assets/%00../../../../etc/passwd",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/api/blob?run=../../etc&id=1",
    "/api/blob?run=alpha&id=../../etc/passwd",
    "/api/scalars?run=%2e%2e%2f%2e%2e%2fetc&tag=passwd",
]


def test_raw_traversal_requests_get_no_outside_content(server: str) -> None:
    for target in RAW_TARGETS:
        status, body = raw_get(server, target)
        assert "root:" not in body and SECRET_MARK not in body, target
        assert status in (400, 404) or "<html" in body.lower(), (target, status, body[:100])


def test_real_server_serves_runs_and_refuses_foreign_host(server: str) -> None:
    body = strict_loads(httpx.get(server + "/api/runs").text)
    assert {r["name"] for r in body["runs"]} == {"alpha", "beta"}
    status, _ = raw_get(server, "/api/runs", host="evil.example")
    assert status == 403


def _read_stream(url: str, out: queue.Queue[str], stop: threading.Event) -> None:
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(10.0)) as response:
            out.put(f"status {response.status_code} {response.headers['content-type']}")
            for line in response.iter_lines():
                out.put(line)
                if stop.is_set():
                    return
    except httpx.HTTPError as exc:
        out.put(f"error {exc!r}")


def _next(lines: queue.Queue[str], deadline: float) -> str:
    return lines.get(timeout=max(0.01, deadline - time.monotonic()))


def test_stream_sends_an_update_after_a_point_is_logged(tmp_path: Path) -> None:
    run = deepscope.init(logdir=tmp_path, name="live", flush_interval=0.05)
    try:
        run.log({"loss": 1.0}, step=0)
        run.flush()
        url, stop_server = serve_in_thread(
            Settings(logdir=tmp_path, poll_interval=0.05, ping_interval=0.1)
        )
        lines: queue.Queue[str] = queue.Queue()
        stop = threading.Event()
        reader = threading.Thread(
            target=_read_stream, args=(url + "/api/stream?run=live", lines, stop), daemon=True
        )
        reader.start()
        deadline = time.monotonic() + 10
        assert _next(lines, deadline).startswith("status 200 text/event-stream")
        while _next(lines, deadline) != ": connected":
            pass
        run.log({"loss": 0.5}, step=1)
        run.flush()
        event = data = ""
        pinged = False
        while not (event == "event: update" and data and pinged):
            line = _next(lines, deadline)
            pinged = pinged or line == ": ping"
            if line.startswith("event: "):
                event = line
            elif line.startswith("data: ") and event == "event: update":
                data = line
        payload = strict_loads(data.removeprefix("data: "))
        assert payload["run"] == "live" and payload["version"] >= 1
        stop.set()
        stopped_at = time.monotonic()
        stop_server()  # the open stream must not keep the server from stopping
        assert time.monotonic() - stopped_at < 8
    finally:
        run.finish()


def test_stream_of_unknown_run_is_404(server: str) -> None:
    response = httpx.get(server + "/api/stream?run=nope", timeout=5)
    assert response.status_code == 404


# --- `deepscope serve` as a subprocess -------------------------------------------------


def _serve(*args: str) -> subprocess.Popen[str]:
    code = "from deepscope.cli import main; main()"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("DEEPSCOPE_TOKEN", None)
    return subprocess.Popen(
        [sys.executable, "-c", code, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _url_line(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if "http://" in line:
                return line
        if proc.poll() is not None:
            raise AssertionError(f"serve exited: {proc.stderr.read() if proc.stderr else ''}")
    raise AssertionError("serve printed no URL")


def _listening(port: int) -> set[str]:
    """Local addresses listening on `port`, from /proc/net/tcp{,6}."""
    found: set[str] = set()
    for name, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, hexport = fields[1].split(":")
            if fields[3] == "0A" and int(hexport, 16) == port and len(address) == width:
                found.add(_ip(address))
    return found


def _ip(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_serve_binds_loopback_only_by_default(logged: Logged) -> None:
    proc = _serve(str(logged.logdir), "--port", "0")
    try:
        line = _url_line(proc)
        url = line.split("at ", 1)[1].split()[0].rstrip("/")
        assert url.startswith("http://127.0.0.1:") and "token" not in line
        port = int(url.rsplit(":", 1)[1])
        assert _listening(port) == {"127.0.0.1"}
        assert httpx.get(url + "/api/health").json()["mode"] == "logdir"
    finally:
        _stop(proc)


def test_serve_on_all_interfaces_generates_and_requires_a_token(logged: Logged) -> None:
    proc = _serve(str(logged.logdir), "--host", "0.0.0.0", "--port", "0")
    try:
        line = _url_line(proc)
        visit = line.split("at ", 1)[1].split()[0]
        base, _, token = visit.partition("/?token=")
        assert len(token) >= 32  # token_urlsafe(24): 192 bits
        assert httpx.get(base + "/api/runs").status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(base + "/api/runs", headers=headers).status_code == 200
        login = httpx.get(visit, follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/"
    finally:
        _stop(proc)
    assert proc.stderr is not None and "token was generated" in proc.stderr.read()


def test_serve_on_a_taken_port_exits_2_with_a_message(logged: Logged) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = _serve(str(logged.logdir), "--port", str(port))
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "already in use" in err and "Traceback" not in err
