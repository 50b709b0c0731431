"""`ExploreWidget`'s API proxy (the explore workbench inline in a notebook): an allow-listed
request answers with the very bytes the explore server gives over HTTP (token and all);
anything else (another route, an absolute URL, ``..``, escapes, header injection, another
method) is refused before it reaches the server. The widget's message handler answers a
comm message with the status, content type and the body as one buffer."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("anywidget")

TOKEN = "wb-s3cret"


@pytest.fixture(scope="module")
def explorer() -> Iterator[Any]:
    import torch

    import deepscope

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3),
    )  # fmt: skip
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with deepscope.explore(model, x, token=TOKEN) as ex:
        yield ex


def _direct(ex: Any, path: str) -> tuple[int, str, bytes]:
    base = ex.url.split("?")[0].rstrip("/")
    req = urllib.request.Request(f"{base}/{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, resp.headers.get("content-type", ""), resp.read()


def test_allowed_requests_answer_the_servers_own_bytes(explorer: Any) -> None:
    from deepscope.notebook.explore_widget import ApiProxy

    proxy = ApiProxy(explorer.url)
    view = "api/workbench/view?view=activations&node=ns:0&input=1&target=-1"
    status, ctype, body = proxy.request("GET", view)
    assert status == 200, body
    answer = json.loads(body)
    paths = ["api/health", "api/workbench", "api/workbench/input?index=2", view,
             "api/graph/level?ns=&model=1", "api/workbench/tabs?node=ns:0"]  # fmt: skip
    for part in answer.get("parts", {}):
        paths.append(f"api/workbench/part?key={answer['key']}&part={part}")
    assert any("part=" in p for p in paths), answer
    for path in paths:
        got = proxy.request("GET", path)
        want = _direct(explorer, path)
        assert got[0] == want[0] == 200, (path, got[2][:200])
        assert got[1] == want[1], path
        assert got[2] == want[2], path
    # the input thumbnail is a PNG, unchanged through the proxy
    assert proxy.request("GET", "api/workbench/input?index=2")[2][:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "path",
    [
        "http://127.0.0.1:1/api/health",
        "//evil.example/api/health",
        "/api/health",
        "api/../api/health",
        "api/workbench/../health",
        "api/%2e%2e/health",
        "api/workbench%2Fview",
        "api/health/",
        "api/stream?run=a",
        "api/blob?run=a&id=1",
        "api/projector/project",
        "static/index.html",
        "api/health\r\nHost: evil.example",
        "api\\health",
        "",
        None,
    ],
)
def test_other_paths_are_refused(explorer: Any, path: Any) -> None:
    from deepscope.notebook.explore_widget import ApiProxy

    status, ctype, body = ApiProxy(explorer.url).request("GET", path)
    assert status == 403
    assert ctype == "application/json"
    assert json.loads(body)["error"]["type"] == "Forbidden"


def test_only_get_and_post_are_proxied(explorer: Any) -> None:
    from deepscope.notebook.explore_widget import ApiProxy

    proxy = ApiProxy(explorer.url)
    for method in ("DELETE", "PUT", "get", None):
        assert proxy.request(method, "api/health")[0] == 405


def test_a_comm_message_is_answered_with_status_type_and_body_buffer(explorer: Any) -> None:
    from deepscope.notebook.explore_widget import ExploreWidget

    replies: list[tuple[dict[str, Any], list[bytes]]] = []
    done = threading.Event()

    class Recorded(ExploreWidget):  # the comm's send, kept here instead of a kernel's socket
        def send(self, content: Any, buffers: Any = None) -> None:
            replies.append((content, list(buffers or [])))
            done.set()

    widget = Recorded(explorer.url)
    try:
        msg = {
            "kind": "deepscope-api",
            "id": 7,
            "method": "GET",
            "path": "api/workbench/input?index=0",
            "body": None,
        }
        widget._on_msg(widget, msg, [])
        assert done.wait(60)
        ((content, buffers),) = replies
        assert content == {"kind": "deepscope-api", "id": 7, "status": 200,
                           "headers": {"content-type": "image/png"}}  # fmt: skip
        assert buffers == [_direct(explorer, "api/workbench/input?index=0")[2]]
        # the widget's own bundle (the explore entry) and its trait, with a link fallback
        assert widget.explore is True
        data, _ = widget._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in data
        assert explorer.url.split("?")[0] in data["text/html"]
    finally:
        widget.close()
