"""A running workbench view whose every request went away stops at its next checkpoint and
is not cached; a view still wanted by another request runs on. Over real HTTP on loopback:
the model holds its forward pass in a gate layer until the test opens it, so every step is
ordered by the job manager's state, never by timing."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import deepscope
from deepscope.views import envelope
from deepscope.workbench.jobs import Outcome, Scheduler

OPEN = threading.Event()
HELD = threading.Event()  # set while a forward pass waits in the gate
ARMED = {"on": False}


class Gate(nn.Module):
    """Holds the forward pass until OPEN is set (when armed): the slow layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if ARMED["on"]:
            HELD.set()
            assert OPEN.wait(30), "the test never opened the gate"
        return x


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), Gate(), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
        nn.Flatten(), nn.Linear(4 * 8 * 8, 3),
    )  # fmt: skip


@pytest.fixture
def explorer() -> Iterator[Any]:
    model = _net()
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    ARMED["on"] = False
    OPEN.clear()
    HELD.clear()
    ex = deepscope.explore(model, x)
    try:
        ARMED["on"] = True
        yield ex, model, x
    finally:
        ARMED["on"] = False
        OPEN.set()
        ex.close()


def _until(cond: Any, what: str) -> None:
    deadline = time.monotonic() + 30
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _node(ex: Any, module: str) -> str:
    nodes = ex.workbench.nodes.nodes
    return next(n for n, i in nodes.items() if i.module == module and n.startswith("ns:"))


def _open_request(ex: Any, query: dict[str, Any]) -> socket.socket:
    """Send one view request on a raw socket (closing it is the page aborting its fetch)."""
    host, port = ex.url.split("//")[1].rstrip("/").split(":")
    sock = socket.create_connection((host, int(port)))
    path = f"/api/workbench/view?{urllib.parse.urlencode(query)}"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    return sock


def _get_view(ex: Any, query: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url = f"{ex.url.rstrip('/')}/api/workbench/view?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, json.loads(r.read())


def _maps(ex: Any, key: str) -> np.ndarray:
    url = f"{ex.url.rstrip('/')}/api/workbench/part?" + urllib.parse.urlencode(
        {"key": key, "part": "maps"}
    )
    with urllib.request.urlopen(url, timeout=60) as r:
        return envelope.decode(r.read())


def _job(ex: Any, key: str) -> dict[str, Any] | None:
    return next((j for j in ex.workbench.jobs() if j["key"] == key), None)


def test_a_running_view_every_request_left_stops_and_is_recomputed(explorer: Any) -> None:
    ex, model, x = explorer
    sched = ex.workbench.scheduler
    node = _node(ex, "3")  # the conv after the gate
    query = {"view": "activations", "node": node, "input": 1}
    key = f"activations|{node}|1|pred"
    sock = _open_request(ex, query)
    assert HELD.wait(30), "the view never reached the gate"
    _until(lambda: (_job(ex, key) or {}).get("state") == "running", "the job never ran")
    sock.close()  # the page moved on
    _until(lambda: (_job(ex, key) or {}).get("state") == "cancelling", "the job was not told")
    OPEN.set()  # the forward pass goes on: the next module's checkpoint stops it
    _until(lambda: _job(ex, key) is None, "the cancelled job never stopped")
    assert sched.cancelled == 1 and sched.computed == 1
    assert sched.get(key) is None  # not cached
    assert ex.workbench._fast._acts == {}  # the half-done forward cached nothing either
    status, body = _get_view(ex, query)  # asked again: computed afresh, right answer
    assert status == 200 and body["key"] == key
    assert sched.computed == 2 and sched.cancelled == 1 and sched.get(key) is not None
    want = deepscope.activations(model, x[1:2], ["3"])["3"][0].numpy()
    np.testing.assert_allclose(_maps(ex, key), want, rtol=1e-5, atol=1e-6)


def test_a_running_view_another_request_still_wants_runs_on(explorer: Any) -> None:
    ex, model, x = explorer
    sched = ex.workbench.scheduler
    node = _node(ex, "3")
    query = {"view": "gradients", "node": node, "input": 2}
    key = f"gradients|{node}|2|pred"
    leaver = _open_request(ex, query)
    assert HELD.wait(30)
    with ThreadPoolExecutor(1) as pool:
        stayer = pool.submit(_get_view, ex, query)
        _until(lambda: (_job(ex, key) or {}).get("waiters") == 2, "the second never joined")
        leaver.close()
        _until(lambda: (_job(ex, key) or {}).get("waiters") == 1, "the leaver was not released")
        assert _job(ex, key)["state"] == "running"  # type: ignore[index]
        OPEN.set()
        status, body = stayer.result(60)
    assert status == 200 and body["key"] == key
    assert sched.computed == 1 and sched.cancelled == 0 and sched.get(key) is not None
    pred = int(model(x[2:3]).argmax())
    res = deepscope.attribute(model, x[2:3], pred, method="saliency", layer="3", abs=False)
    np.testing.assert_allclose(_maps(ex, key), res.attributions[0].numpy(), rtol=1e-5, atol=1e-6)


def test_scheduler_stops_a_released_running_job_at_its_next_progress_report() -> None:
    sched = Scheduler({"slow": None})
    started, steps = threading.Event(), []

    def long_ig(ctx: Any, progress: Any) -> Outcome:
        for k in range(10_000):  # many steps; each reports progress (a checkpoint)
            progress(k / 10_000, f"step {k}")
            steps.append(k)
            started.set()
            if k == 5:
                assert release_done.wait(30)
        return Outcome({"steps": len(steps)})

    release_done = threading.Event()
    try:
        job = sched.submit("ig", "slow", long_ig)
        assert started.wait(30)
        job.release()
        release_done.set()
        assert job.wait(30) and job.state == "cancelled" and job.result is None
        assert steps[-1] == 5  # stopped at the very next checkpoint
        assert sched.cancelled == 1 and sched.get("ig") is None and sched.jobs() == []
        again = sched.submit("ig", "slow", lambda ctx, progress: Outcome({"ok": True}))
        assert again is not job and again.wait(30) and again.result is not None
        assert sched.computed == 2
    finally:
        sched.close()
