"""The explore workbench as a notebook widget (`ExploreWidget`) in Chromium: a test page plays
the anywidget host (``render({model, el})`` with ``get``/``on``/``send``) and carries the
widget's comm messages to the real `ExploreWidget` in this process over a small loopback
bridge (the part a kernel's comm plays in a notebook). Click a conv node and the Activations
tab's tiles are `deepscope.activations` of that layer through viridis; every API request
and image travels through the proxy, none to the page's own origin."""

from __future__ import annotations

import base64
import http.server
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from e2e_support import STATIC_INDEX, screenshot
from test_workbench import CHANNELS, _cnn, _viridis

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>explore widget host</title>
<link rel="icon" href="data:,"></head>
<body><div id="out" style="width: 1200px"></div>
<script type="module">
  const post = window.fetch.bind(window);
  const listeners = new Set();
  const traits = { explore: true, height: 720 };
  const model = {
    get: (n) => traits[n],
    on: (ev, cb) => { if (ev === 'msg:custom') listeners.add(cb); },
    off: (ev, cb) => listeners.delete(cb),
    send: (content) => {
      post('/bridge', { method: 'POST', body: JSON.stringify(content) }).then(async (r) => {
        if (r.status !== 200) return;
        const reply = JSON.parse(r.headers.get('x-reply'));
        const buf = await r.arrayBuffer();
        for (const cb of listeners) cb(reply, [new DataView(buf)]);
      });
    },
  };
  const widget = await import('./widget.js');
  widget.default.render({ model, el: document.getElementById('out') });
  window.__ready = true;
</script></body></html>
"""

# canvas pixels inside the widget's shadow root
SHADOW_PIXELS = """
([selector, index]) => {
  const canvas = document.getElementById('out').shadowRoot.querySelectorAll(selector)[index];
  if (!canvas) return null;
  const bytes = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return { width: canvas.width, height: canvas.height, b64: btoa(bin) };
}
"""

PAINTED = (
    "(n) => document.getElementById('out').shadowRoot"
    ".querySelectorAll('[data-testid=act-tile] canvas[data-painted]').length === n"
)


@pytest.fixture(scope="module")
def bench() -> Iterator[tuple[str, Any, Any, list[str]]]:
    if not (STATIC_INDEX.parent / "embed" / "widget.js").exists():
        pytest.skip("the frontend is not built: run `npm run build` in frontend/")
    import torch

    import deepscope
    from deepscope.notebook.explore_widget import ExploreWidget
    from deepscope.views import embed

    replies: dict[int, queue.Queue[tuple[dict[str, Any], bytes]]] = {}
    lock = threading.Lock()

    class Bridged(ExploreWidget):
        """The widget, its comm replies handed to the bridge request that waits for them."""

        def send(self, content: Any, buffers: Any = None) -> None:
            with lock:
                box = replies.get(content["id"])
            if box is not None:
                box.put((content, bytes(buffers[0])))

    model = _cnn()
    x = torch.rand(5, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    paths: list[str] = []
    page = PAGE.encode("utf-8")
    esm = embed.widget_esm().encode("utf-8")
    with deepscope.explore(
        model, x, labels=[0, 1, 2, 3, 0], classes=["ant", "bee", "cat", "dog"]
    ) as ex:
        widget = Bridged(ex.url)

        class Bridge(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, ctype: str, body: bytes, extra: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                paths.append(self.path)
                if self.path == "/index.html":
                    self._send(200, "text/html", page, {})
                elif self.path == "/widget.js":
                    self._send(200, "text/javascript", esm, {})
                else:
                    self._send(404, "text/plain", b"no", {})

            def do_POST(self) -> None:  # noqa: N802
                paths.append(self.path)
                msg = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                box: queue.Queue[tuple[dict[str, Any], bytes]] = queue.Queue()
                rid = msg.get("id")
                if isinstance(rid, int):
                    with lock:
                        replies[rid] = box
                widget._on_msg(widget, msg, [])
                if not isinstance(rid, int):
                    self._send(204, "text/plain", b"", {})
                    return
                content, body = box.get(timeout=120)
                with lock:
                    replies.pop(rid, None)
                self._send(200, "application/octet-stream", body, {"X-Reply": json.dumps(content)})

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Bridge)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html", model, x, paths
        finally:
            httpd.shutdown()
            httpd.server_close()
            widget.close()


def _pixels(page: Any, index: int) -> np.ndarray:
    got = page.evaluate(SHADOW_PIXELS, ['[data-testid="act-tile"] canvas', index])
    rgba = np.frombuffer(base64.b64decode(got["b64"]), dtype=np.uint8)
    return rgba.reshape(got["height"], got["width"], 4)[..., :3]


def test_widget_conv_node_feature_maps_equal_deepscope_activations(
    page: Any, bench: tuple[str, Any, Any, list[str]], page_log: Any
) -> None:
    import deepscope

    url, model, x, paths = bench
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_function("() => window.__ready === true")
    # the input strip's thumbnails come through the comm proxy as object URLs
    page.wait_for_selector('[data-testid="wb-strip"] [data-testid="wb-input"] img[src^="blob:"]')
    page.locator('[data-testid="wb-input"][data-index="2"]').click()
    page.locator('[data-testid="graph-node"][data-node-id="ns:conv2"]').click()
    page.wait_for_selector('[data-testid="wb-tab-activations"]')
    page.wait_for_selector('[data-testid="wb-activations"][data-key="activations|ns:conv2|2|pred"]')
    page.wait_for_function(PAINTED, arg=CHANNELS)
    want = deepscope.activations(model, x[2:3], ["conv2"])["conv2"][0].numpy()
    lo, hi = float(want.min()), float(want.max())
    for k in (0, CHANNELS - 1):
        pixels = _pixels(page, k)
        assert pixels.shape == (12, 12, 3)
        assert np.abs(pixels.astype(int) - _viridis(want[k], lo, hi)).max() <= 5
    page.wait_for_selector('[data-testid="wb-preds"] li')
    probs = model(x[2:3]).softmax(1)[0].detach().numpy()
    first = page.locator('[data-testid="wb-preds"] li').first.get_attribute("data-class")
    assert int(first) == int(probs.argmax())
    # the widget lays the graph out on the page (no ELK worker in a widget): top to bottom
    # along the edges, though the level lists the modules before the ops between them
    tops = [
        page.locator(f'[data-testid="graph-node"][data-node-id="{i}"]').bounding_box()["y"]
        for i in ("ns:conv1", "ns:conv2", "ns:pool", "ns:fc")
    ]
    assert tops == sorted(tops) and len(set(tops)) == 4, tops
    screenshot(page, "widget-explore")
    # nothing asked the page's own origin for the API: every request went over the bridge
    assert [p for p in paths if p not in ("/index.html", "/widget.js", "/bridge")] == []
    assert paths.count("/bridge") >= 5
    assert page_log.errors == []
