"""The notebook widget's real bundle (``embed/widget.js``) in Chromium: a test page plays the
anywidget host (``render({model, el})`` with a model that has ``get``/``on``), fed the
snapshot `deepscope.notebook.show.result_snapshot` makes for a result. Activations and unit
stats draw their tiles and crops (pixels checked), a graph draws its explorer, and the
dashboard styles stay inside the widget's shadow root."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import SCREENSHOTS, STATIC_INDEX

from deepscope import _jsonstrict
from deepscope.views import embed

pytestmark = pytest.mark.browser

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>widget host</title>
<link rel="icon" href="data:,"><style>button { color: rgb(1, 2, 3); }</style></head>
<body><button id="host-button">host</button><div id="out" style="width: 1100px"></div>
<script type="module">
  const payload = await (await fetch('./payload.json')).json();
  const model = { get: (n) => (n === 'payload' ? payload : undefined), on: () => {}, off: () => {} };
  const widget = await import('./widget.js');
  widget.default.render({ model, el: document.getElementById('out') });
  window.__ready = true;
</script></body></html>
"""


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    if not (STATIC_INDEX.parent / "embed" / "widget.js").exists():
        pytest.skip("the frontend is not built: run `npm run build` in frontend/")
    import torch

    import deepscope

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(6, 3),
    )  # fmt: skip
    x = torch.zeros(2, 1, 8, 8)
    x[0, 0, 2:6, 2:6] = 1.0
    x[1, 0, :, 4] = 1.0
    acts = deepscope.activations(model, x, layers=["0", "2"])
    data = [(torch.rand(4, 1, 8, 8), torch.zeros(4)) for _ in range(3)]
    stats = deepscope.unit_stats(model, data, layers=["0"], top_k=3)
    return {"model": model, "x": x, "activations": acts, "unit_stats": stats,
            "graph": deepscope.graph(model, x)}  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    root = tmp_path_factory.mktemp("widget-host")
    (root / "index.html").write_text(PAGE, encoding="utf-8")
    (root / "widget.js").write_text(embed.widget_esm(), encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(root))
    )
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _open(browser: Any, site: tuple[Path, str], snapshot: embed.Snapshot, name: str) -> Any:
    root, url = site
    (root / "payload.json").write_text(_jsonstrict.dumps(snapshot), encoding="utf-8")
    context = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("() => window.__ready === true")
    page.__errors = errors  # type: ignore[attr-defined]
    return page


PAINTED = """(sel) => [...document.getElementById('out').shadowRoot.querySelectorAll(sel)].map((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  const px = new Set(); for (let i = 0; i < d.length; i += 4) px.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);
  return { w: c.getBoundingClientRect().width, colours: px.size, key: [...px].slice(0, 64).join(',') }; })"""


def test_widget_draws_activation_tiles_and_unit_crops(
    browser: Any, site: Any, results: Any
) -> None:
    from deepscope.notebook.show import result_snapshot

    snap, png, _ = result_snapshot(results["activations"])
    assert snap["panel"] == "activations" and png is not None
    page = _open(browser, site, snap, "activations")
    try:
        tiles = '[data-testid="act-tile"] canvas[data-painted]'
        page.locator(tiles).first.wait_for()
        page.wait_for_function(
            f"() => document.getElementById('out').shadowRoot.querySelectorAll('{tiles}').length === 4"
        )
        shots = page.evaluate(PAINTED, tiles)
        assert min(s["w"] for s in shots) >= 64  # an 8x8 map drawn large
        assert all(s["colours"] > 1 for s in shots)  # the square input shows
        assert len({s["key"] for s in shots}) >= 3  # channels differ
        # the layer list is the captured layers; the second layer has 6 tiles
        page.locator('[data-testid="act-layer"][data-layer="2"]').click()
        page.wait_for_function(
            f"() => document.getElementById('out').shadowRoot.querySelectorAll('{tiles}').length === 6"
        )
        # the dashboard's `button` rule stays in the shadow root; the host's stays out
        host = page.evaluate("() => getComputedStyle(document.getElementById('host-button')).color")
        assert host == "rgb(1, 2, 3)"
        inner = page.locator('[data-testid="act-layer"]').first.evaluate(
            "(b) => getComputedStyle(b).color"
        )
        assert inner != "rgb(1, 2, 3)"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "widget-activations.png"), full_page=True)
        assert page.__errors == []
    finally:
        page.context.close()

    snap, _, _ = result_snapshot(results["unit_stats"])
    assert snap["panel"] == "unit_stats"
    page = _open(browser, site, snap, "unit_stats")
    try:
        page.locator('[data-testid="unit-table"]').wait_for()
        crops = '[data-testid="unit-top"] canvas[data-painted]'
        page.wait_for_function(
            f"() => document.getElementById('out').shadowRoot.querySelectorAll('{crops}').length === 12"
        )  # 4 units x top 3
        shots = page.evaluate(PAINTED, crops)
        assert all(s["colours"] > 1 for s in shots)
        assert page.locator(".error").count() == 0  # a unit-stats-only result asks for no more
        page.screenshot(path=str(SCREENSHOTS / "widget-unit-stats.png"), full_page=True)
    finally:
        page.context.close()


def test_widget_draws_a_graph_explorer(browser: Any, site: Any, results: Any) -> None:
    from deepscope.notebook.show import result_snapshot

    snap, _, _ = result_snapshot(results["graph"])
    page = _open(browser, site, snap, "graph")
    try:
        page.locator('[data-testid="graph-node"]').first.wait_for(timeout=20_000)
        assert page.locator('[data-testid="graph-node"]').count() >= 3
        page.locator('[data-testid="graph-search"]').fill("conv")
        hits = page.locator('[data-testid="graph-search-result"]')
        hits.first.wait_for()  # answered in the page from the snapshot's search index
        ids = hits.evaluate_all("(els) => els.map((e) => e.dataset.nodeId)")
        assert ids[:2] == ["ns:0", "ns:2"], ids  # the Conv2d groups first, then their ops
        page.screenshot(path=str(SCREENSHOTS / "widget-graph.png"), full_page=True)
        assert page.__errors == []
    finally:
        page.context.close()
