"""`deepscope.explore` over real HTTP: concurrent views are each the sequential answer and
computed once per key; a view that raises is its error and the server keeps serving; a
request whose client left is never computed while queued; the slow lane never holds up a
click; a non-loopback host needs a token (and the Host check still applies)."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import deepscope
from deepscope.errors import DeepscopeError
from deepscope.views import envelope

GATE = threading.Event()
ARMED = {"batch1": False, "batched": False}


class Gate(nn.Module):
    """Waits on the module-level GATE when armed for this batch size (a slow layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = "batch1" if x.shape[0] == 1 else "batched"
        if ARMED[key]:
            assert GATE.wait(30), "the test never opened the gate"
        return x


class NoGrad(nn.Module):
    """A side layer whose output the model detaches: a gradient view at it raises."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


class Net(nn.Module):
    """A gate, `depth` conv + ReLU pairs, and a side branch whose output has no gradient."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [Gate()]
        ch = 3
        for _ in range(depth):
            layers += [nn.Conv2d(ch, 4, 3, padding=1), nn.ReLU()]
            ch = 4
        self.body = nn.Sequential(*layers)
        self.side = NoGrad()
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.body(x)
        return self.head(h) + 0 * self.side(h).detach().mean()


def _cnn(depth: int = 10) -> Net:
    torch.manual_seed(0)
    return Net(depth)


def _get(url: str, path: str, **query: Any) -> tuple[int, bytes]:
    full = f"{url.rstrip('/')}/api/workbench{path}?{urllib.parse.urlencode(query)}"
    try:
        with urllib.request.urlopen(full, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _view(url: str, **query: Any) -> dict[str, Any]:
    status, body = _get(url, "/view", **query)
    assert status == 200, body
    out: dict[str, Any] = json.loads(body)
    return out


def _array(url: str, key: str, part: str) -> np.ndarray:
    status, body = _get(url, "/part", key=key, part=part)
    assert status == 200, body
    return envelope.decode(body)


@pytest.fixture
def explorer() -> Any:
    model = _cnn()
    x = torch.rand(6, 3, 10, 10, generator=torch.Generator().manual_seed(3))
    GATE.clear()
    ARMED.update(batch1=False, batched=False)
    ex = deepscope.explore(model, x)
    try:
        yield ex, model, x
    finally:
        ARMED.update(batch1=False, batched=False)
        GATE.set()
        ex.close()


def _conv_nodes(ex: Any) -> list[tuple[str, str]]:
    nodes = ex.workbench.nodes.nodes
    return [
        (n, i.module) for n, i in nodes.items() if i.module_type == "Conv2d" and n.startswith("ns:")
    ]


def test_twenty_concurrent_views_each_equal_the_sequential_result(explorer: Any) -> None:
    ex, model, x = explorer
    convs = _conv_nodes(ex)
    assert len(convs) == 10
    # 20 different keys: feature maps and gradients of 10 conv nodes, on input 4
    queries = [("activations", nid, mod) for nid, mod in convs] + [
        ("gradients", nid, mod) for nid, mod in convs
    ]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda q: _view(ex.url, view=q[0], node=q[1], input=4), queries))
    assert ex.workbench.scheduler.computed == 20  # one computation per key
    acts = deepscope.activations(model, x[4:5], [mod for _, mod in convs])
    for (view, _, mod), ans in zip(queries, answers, strict=True):
        got = _array(ex.url, ans["key"], "maps")
        if view == "activations":
            want = acts[mod][0].numpy()
        else:
            pred = int(model(x[4:5]).argmax())
            res = deepscope.attribute(model, x[4:5], pred, method="saliency", layer=mod, abs=False)
            want = res.attributions[0].numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the same 20 again: all cached, nothing computed
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda q: _view(ex.url, view=q[0], node=q[1], input=4), queries))
    assert ex.workbench.scheduler.computed == 20


def test_identical_concurrent_requests_share_one_computation(explorer: Any) -> None:
    ex, _, _ = explorer
    node = _conv_nodes(ex)[3][0]
    ARMED["batch1"] = True  # hold the computation so every request joins it
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(_view, ex.url, view="gradcam", node=node, input=1, target=2)
                   for _ in range(8)]  # fmt: skip
        deadline = time.monotonic() + 20
        while not any(j["waiters"] == 8 for j in ex.workbench.jobs()):
            assert time.monotonic() < deadline, ex.workbench.jobs()
            time.sleep(0.02)
        GATE.set()
        keys = {f.result()["key"] for f in futures}
    assert keys == {f"gradcam|{node}|1|2"}
    assert ex.workbench.scheduler.computed == 1


def test_a_view_that_raises_is_its_error_and_the_server_keeps_serving(explorer: Any) -> None:
    ex, _, _ = explorer
    nodes = ex.workbench.nodes.nodes
    nograd = next(n for n, i in nodes.items() if i.module_type == "NoGrad" and n.startswith("ns:"))
    status, body = _get(ex.url, "/view", view="gradients", node=nograd, input=0)
    assert status == 422
    err = json.loads(body)["error"]
    assert err["type"] == "ViewFailed" and "RuntimeError" in err["message"]
    status, body = _get(ex.url, "/view", view="gradients", node="no-such-node", input=0)
    assert status == 400 and b"no node" in body
    status, body = _get(ex.url, "/view", view="gradcam", node=_conv_nodes(ex)[0][0], input=0,
                        target=99)  # fmt: skip
    assert status == 422 and b"class 99 is out of range (0..2)" in body
    ok = _view(ex.url, view="activations", node=nograd, input=0)  # same node, other view
    assert ok["meta"]["shape"] == [4, 10, 10]
    assert _view(ex.url, view="predict", input=0)["meta"]["top"]


def test_a_request_whose_client_left_is_never_computed(explorer: Any) -> None:
    ex, _, _ = explorer
    sched = ex.workbench.scheduler
    node = _conv_nodes(ex)[0][0]
    ARMED["batch1"] = True
    blocker = threading.Thread(target=_view, args=(ex.url,),
                               kwargs={"view": "activations", "node": node, "input": 0})  # fmt: skip
    blocker.start()
    deadline = time.monotonic() + 20
    while not any(j["state"] == "running" for j in ex.workbench.jobs()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # a client asks for input 5, then goes away while its job waits in the queue
    host, port = ex.url.split("//")[1].rstrip("/").split(":")
    sock = socket.create_connection((host, int(port)))
    path = f"/api/workbench/view?view=activations&node={urllib.parse.quote(node)}&input=5"
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    key = f"activations|{node}|5|pred"
    while not any(j["key"] == key for j in ex.workbench.jobs()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    sock.close()
    while any(j["key"] == key for j in ex.workbench.jobs()):
        assert time.monotonic() < deadline, "the abandoned job stayed queued"
        time.sleep(0.02)
    ARMED["batch1"] = False
    GATE.set()
    blocker.join(30)
    while sched.skipped < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert sched.computed == 1 and sched.get(key) is None  # never computed
    assert _view(ex.url, view="activations", node=node, input=5)["input"] == 5  # asked again: it is


def test_a_slow_view_never_holds_up_a_click(explorer: Any) -> None:
    ex, _, _ = explorer
    node = _conv_nodes(ex)[2][0]
    ARMED["batched"] = True  # the unit table runs batches of inputs: it waits on the gate
    slow = ThreadPoolExecutor(1).submit(_view, ex.url, view="units", node=node, input=0)
    deadline = time.monotonic() + 20
    while not any(j["lane"] == "slow" and j["state"] == "running" for j in ex.workbench.jobs()):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    fast = _view(ex.url, view="activations", node=node, input=2)  # answered meanwhile
    assert fast["meta"]["layout"] == "chw" and not slow.done()
    status, body = _get(ex.url, "/jobs")
    (job,) = [j for j in json.loads(body)["jobs"] if j["lane"] == "slow"]
    assert job["state"] == "running" and job["note"].startswith("batch 1 of")
    GATE.set()
    units = slow.result(30)["meta"]
    assert units["inputs"] == 6 and len(units["mean"]) == 4


def test_explore_refuses_a_network_host_without_a_token() -> None:
    model = _cnn(1)
    with pytest.raises(DeepscopeError, match="token"):
        deepscope.explore(model, torch.rand(2, 3, 10, 10), host="0.0.0.0")
    with pytest.raises(DeepscopeError, match="token"):
        deepscope.explore(model, torch.rand(2, 3, 10, 10), host="192.168.1.10")


def test_a_token_guards_every_workbench_route_and_the_host_check_holds() -> None:
    model = _cnn(1)
    with deepscope.explore(model, torch.rand(2, 3, 10, 10), token="s3cret-token") as ex:
        assert ex.url.endswith("/?token=s3cret-token")
        base = ex.url.split("/?")[0]
        status, _ = _get(base, "")
        assert status == 401
        req = urllib.request.Request(f"{base}/api/workbench",
                                     headers={"Authorization": "Bearer s3cret-token"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["inputKind"] == "image"
        evil = urllib.request.Request(
            f"{base}/api/workbench",
            headers={"Authorization": "Bearer s3cret-token", "Host": "evil.example"},
        )
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(evil, timeout=30)
        assert info.value.code == 403


def test_routes_without_a_live_model_say_how_to_start_one(tmp_path: Any) -> None:
    from starlette.testclient import TestClient

    from deepscope.server.app import Settings, create_app

    client = TestClient(create_app(Settings(logdir=tmp_path)), base_url="http://127.0.0.1")
    resp = client.get("/api/workbench/view?view=activations&node=x")
    assert resp.status_code == 404 and "deepscope.explore" in resp.json()["error"]["message"]
