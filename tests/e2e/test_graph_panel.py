"""The graph explorer panel in real Chromium against a real server and real logged graphs.

A small ResNet-style torch model is logged with `run.log_graph(model, example)`; a second
run logs a Graph IR whose layer names are XSS payloads (THREATS D5); a third a flat level of
5,000 ops (THREATS S9: the view must stay usable). The browser, page and page_log fixtures
come from tests/e2e/conftest.py; the store and server here are this module's own.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import numpy as np
import pytest
from e2e_support import SCREENSHOTS, STATIC_INDEX, XSS_PAYLOADS, fit_graph

pytestmark = pytest.mark.browser

# torch refuses "." in module names, so the module-name payload spells window.__x differently.
TORCH_PAYLOAD = "<img src=x onerror=window['__x']=1>"
FLAT_OPS = 5000


def _resnet() -> tuple[Any, Any]:
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(c, c, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(c)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(c, c, 3, padding=1)
            self.bn2 = nn.BatchNorm2d(c)
            self.relu2 = nn.ReLU()

        def forward(self, x: Any) -> Any:
            y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
            return self.relu2(y + x)

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.layer1 = nn.Sequential(Block(8), Block(8))
            self.layer2 = nn.Sequential(Block(8), Block(8))
            self.add_module(TORCH_PAYLOAD, nn.ReLU())
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(8, 10)

        def forward(self, x: Any) -> Any:
            x = getattr(self, TORCH_PAYLOAD)(self.layer2(self.layer1(self.stem(x))))
            return self.fc(torch.flatten(self.pool(x), 1))

    torch.manual_seed(0)
    return Net().eval(), torch.randn(1, 3, 16, 16)


def _xss_graph() -> Any:
    """Ops labelled with every payload, inside a group whose name is a payload too."""
    from deepscope.graph.ir import Edge, Graph, Node, TensorMeta

    t = TensorMeta((1, 4), "float32")
    group = XSS_PAYLOADS[0]  # no "/" in it: one namespace segment
    nodes = [Node("in", "input", "in", outputs=[t])]
    for i, p in enumerate(XSS_PAYLOADS):
        nodes.append(Node(f"n{i}", "relu", p, namespace=group, inputs=[t], outputs=[t]))
    edges = [Edge("in", "n0", tensor=t)] + [
        Edge(f"n{i}", f"n{i + 1}", tensor=t) for i in range(len(XSS_PAYLOADS) - 1)
    ]
    g = Graph(nodes=nodes, edges=edges, inputs=["in"], outputs=[f"n{len(XSS_PAYLOADS) - 1}"])
    values = {f"n{i}": float(i) for i in range(len(XSS_PAYLOADS) - 1)}
    values[f"n{len(XSS_PAYLOADS) - 1}"] = float("nan")
    g.set_overlay("grad_norm", values)
    return g


def _flat_graph() -> Any:
    from deepscope.graph.ir import Edge, Graph, Node, TensorMeta

    t = TensorMeta((1, 16), "float32")
    ops = ["linear", "relu", "add", "mul"]
    nodes = [Node(f"f{i}", ops[i % 4], f"op{i}", inputs=[t], outputs=[t]) for i in range(FLAT_OPS)]
    edges = [Edge(f"f{i}", f"f{i + 1}", tensor=t) for i in range(FLAT_OPS - 1)]
    edges += [Edge(f"f{i}", f"f{i + 7}", tensor=t) for i in range(0, FLAT_OPS - 7, 5)]
    return Graph(nodes=nodes, edges=edges, inputs=["f0"], outputs=[f"f{FLAT_OPS - 1}"])


@pytest.fixture(scope="module")
def graph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import deepscope
    from deepscope.server.runner import serve_in_thread
    from deepscope.server.settings import Settings

    root = tmp_path_factory.mktemp("graph-logdir")
    model, example = _resnet()
    with deepscope.init(logdir=root, name="resnet") as run:
        run.log_graph(model, example)
    with deepscope.init(logdir=root, name="xss") as run:
        run.log_graph(_xss_graph())
    with deepscope.init(logdir=root, name="flat") as run:
        run.log_graph(_flat_graph())
    url, stop = serve_in_thread(Settings(logdir=root))
    try:
        yield url
    finally:
        stop()


def _open(page: Any, url: str, run: str) -> None:
    page.goto(f"{url}/#/graph?runs={quote(run, safe='')}")
    page.wait_for_selector('[data-testid="panel-graph"] [data-testid="graph-node"]')
    _settle(page)


def _settle(page: Any) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-testid=graph-explorer]')?.dataset.busy === 'false'"
    )


def _ids(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        '[data-testid="graph-node"]', "els => els.map(e => e.dataset.nodeId)"
    )


def _node(page: Any, node_id: str) -> Any:
    return page.locator(f'[data-testid="graph-node"][data-node-id="{node_id}"]')


def _fills(page: Any) -> dict[str, str]:
    return page.eval_on_selector_all(
        '[data-testid="graph-node"]',
        "els => Object.fromEntries(els.map(e => [e.dataset.nodeId,"
        " getComputedStyle(e.querySelector('rect')).fill]))",
    )


def _view_colours(page: Any) -> int:
    """Distinct strongly coloured pixels (saturation) in the graph view's screenshot."""
    from PIL import Image

    png = page.locator(".gx-view").screenshot()
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3).astype(int)
    sat = rgb.max(axis=1) - rgb.min(axis=1)
    coloured = rgb[sat > 40] // 8
    return len({tuple(c) for c in coloured})


def test_top_level_expand_inspect_search_colour(
    graph_server: str, page: Any, page_log: Any
) -> None:
    _open(page, graph_server, "resnet")
    top = _ids(page)
    for name in ("stem", "layer1", "layer2", "pool", "fc"):
        assert f"ns:{name}" in top
        assert _node(page, f"ns:{name}").get_attribute("data-kind") == "group"
    assert _node(page, "ns:layer1").locator(".gx-label").text_content() == "layer1"
    assert not any(i.startswith("ns:layer1/") for i in top)

    # Double-click expands a group in place: its children appear inside it, the group and
    # what lies above it stay where they were on screen.
    before = {i: _node(page, i).bounding_box() for i in ("ns:stem", "ns:layer1")}
    _node(page, "ns:layer1").dblclick()
    page.wait_for_selector('[data-node-id="ns:layer1/0"]')
    _settle(page)
    after = _ids(page)
    assert len(after) == len(top) + 2
    assert {"ns:layer1/0", "ns:layer1/1"} <= set(after)
    assert _node(page, "ns:layer1").get_attribute("data-expanded") == "true"
    for i, b in before.items():
        now = _node(page, i).bounding_box()
        assert abs(now["x"] - b["x"]) <= 1 and abs(now["y"] - b["y"]) <= 1, i
    outer = _node(page, "ns:layer1").bounding_box()
    inner = _node(page, "ns:layer1/1").bounding_box()
    assert outer["x"] <= inner["x"] and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
    assert outer["y"] <= inner["y"] and inner["y"] + inner["height"] <= outer["y"] + outer["height"]

    # The inspector's expand button opens the second level.
    _node(page, "ns:layer1/0").click()
    inspector = page.get_by_test_id("graph-inspector")
    assert inspector.get_attribute("data-node-id") == "ns:layer1/0"
    inspector.get_by_test_id("graph-expand").click()
    page.wait_for_selector('[data-node-id="ns:layer1/0/conv1"]')
    _settle(page)
    labels = page.eval_on_selector_all(
        '[data-testid="graph-node"] .gx-label', "els => els.map(e => e.textContent)"
    )
    assert {"conv1", "bn1", "conv2", "bn2"} <= set(labels)

    # Search an op in a group that is still collapsed: its ancestors open and it is highlighted.
    page.get_by_test_id("graph-search").fill("add")
    results = page.get_by_test_id("graph-search-result")
    results.first.wait_for()
    ids = results.evaluate_all("els => els.map(e => e.dataset.nodeId)")
    ns = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=graph-search-result]')]"
        ".map(e => e.querySelector('.gx-res-ns').textContent)"
    )
    target = next(i for i, n in zip(ids, ns, strict=True) if n.startswith("layer2/"))
    target_label = results.nth(ids.index(target)).locator(".gx-res-label").text_content()
    results.nth(ids.index(target)).click()
    hit = page.locator(
        f'[data-testid="graph-node"][data-node-id="{target}"][data-highlighted="true"]'
    )
    hit.wait_for()
    _settle(page)
    assert _node(page, "ns:layer2").get_attribute("data-expanded") == "true"
    box = hit.bounding_box()
    view = page.locator(".gx-view").bounding_box()
    assert view["x"] <= box["x"] + box["width"] / 2 <= view["x"] + view["width"]
    assert view["y"] <= box["y"] + box["height"] / 2 <= view["y"] + view["height"]

    # The inspector shows op, shapes and dtypes of the clicked node.
    hit.click()
    assert inspector.get_attribute("data-node-id") == target
    assert inspector.locator(".gx-title").text_content() == target_label
    assert "add" in inspector.text_content()
    assert "float32 1×8×16×16" in inspector.get_by_test_id("graph-inspector-outputs").text_content()
    assert "1×8×16×16" in inspector.get_by_test_id("graph-inspector-inputs").text_content()

    # Colour by op: distinct ops get distinct fills; "none" makes them plain.
    colour = page.get_by_test_id("graph-color")
    colour.select_option("none")
    plain = _fills(page)
    plain_pixels = _view_colours(page)
    colour.select_option("op")
    by_op = _fills(page)
    assert len({plain[i] for i in plain if not i.startswith("ns:")}) == 1
    assert len({by_op[i] for i in by_op if not i.startswith("ns:")}) >= 2
    assert by_op[target] != plain[target]
    assert _view_colours(page) > plain_pixels

    # The payload module name is shown as text and never runs.
    payload = _node(page, f"ns:{TORCH_PAYLOAD}")
    assert payload.locator("title").text_content().startswith(TORCH_PAYLOAD)
    assert page.evaluate("window.__x") is None

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "graph.png"))

    # Fit brings every node of the expanded graph into the view.
    fit_graph(page)
    view = page.locator(".gx-view").bounding_box()
    boxes = page.eval_on_selector_all(
        '[data-testid="graph-node"]',
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return [r.left, r.top, r.right, r.bottom]; })",
    )
    assert len(boxes) == len(_ids(page)) > len(after)
    for left, top, right, bottom in boxes:
        assert view["x"] - 1 <= left and right <= view["x"] + view["width"] + 1
        assert view["y"] - 1 <= top and bottom <= view["y"] + view["height"] + 1
    assert page_log.errors == []
    assert page.evaluate("window.__cspViolations") == []


def test_payload_layer_names_render_as_text(graph_server: str, page: Any, page_log: Any) -> None:
    _open(page, graph_server, "xss")
    group = f"ns:{XSS_PAYLOADS[0]}"
    _node(page, group).dblclick()
    page.wait_for_selector('[data-node-id="n0"]')
    _settle(page)
    fit_graph(page)
    for i, p in enumerate(XSS_PAYLOADS):
        _node(page, f"n{i}").click()
        assert page.get_by_test_id("graph-inspector").locator(".gx-title").text_content() == p
        assert _node(page, f"n{i}").locator("title").text_content().startswith(p)
    # Colour by an overlay: a sequential scale with a legend; the node without a value is grey.
    page.get_by_test_id("graph-color").select_option("ov:grad_norm")
    fills = _fills(page)
    assert fills["in"] == "rgb(184, 184, 184)"
    assert fills[f"n{len(XSS_PAYLOADS) - 1}"] == "rgb(255, 31, 31)"  # NaN: the non-finite red
    finite = [fills[f"n{i}"] for i in range(len(XSS_PAYLOADS) - 1)]
    assert len(set(finite)) == len(finite) and "rgb(184, 184, 184)" not in finite
    assert "grad_norm" in page.get_by_test_id("graph-legend").text_content()
    page.get_by_test_id("graph-search").fill("onerror")
    page.get_by_test_id("graph-search-result").first.wait_for()
    assert page.evaluate("window.__x") is None
    assert page_log.dialogs == []
    assert page_log.errors == []
    assert page.locator("img").count() == 0


def test_five_thousand_node_level_stays_usable(graph_server: str, page: Any, page_log: Any) -> None:
    page.goto(f"{graph_server}/#/graph?runs=flat")
    page.wait_for_selector('[data-testid="graph-node"]', timeout=60_000)
    _settle(page)
    status = page.get_by_test_id("graph-status").text_content()
    assert status == f"{FLAT_OPS} nodes"
    # Fit shows the whole level; zooming in renders only what is in view.
    fit_graph(page)
    canvas = page.get_by_test_id("graph-canvas")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 40)
    for _ in range(12):
        page.mouse.wheel(0, -400)
    page.wait_for_function(
        f"() => +document.querySelector('[data-testid=graph-canvas]').dataset.renderedNodes < {FLAT_OPS}"
    )
    shown = int(canvas.get_attribute("data-rendered-nodes"))
    assert 0 < shown < FLAT_OPS
    assert page.locator('[data-testid="graph-node"]').count() == shown
    # Still interactive: clicking a node fills the inspector.
    target = page.evaluate(
        """() => {
          const view = document.querySelector('[data-testid=graph-canvas]').getBoundingClientRect();
          for (const el of document.querySelectorAll('[data-testid=graph-node]')) {
            const r = el.getBoundingClientRect();
            const x = r.x + r.width / 2, y = r.y + r.height / 2;
            if (x > view.left && x < view.right && y > view.top && y < view.bottom)
              return { id: el.dataset.nodeId, x, y };
          }
          return null;
        }"""
    )
    assert target is not None
    page.mouse.click(target["x"], target["y"])
    inspector = page.get_by_test_id("graph-inspector")
    assert inspector.get_attribute("data-node-id") == target["id"]
    assert page_log.errors == []


PORT_EDGES_JS = """
(group) => [...document.querySelectorAll('[data-testid=graph-port-edge]')]
  .filter((e) => e.dataset.group === group)
  .map((e) => {
    const end = e.getPointAtLength(e.dataset.port === 'in' ? e.getTotalLength() : 0);
    const node = document.querySelector(
      `[data-testid=graph-node][data-node-id="${CSS.escape(e.dataset.child)}"]`);
    const m = node.transform.baseVal.consolidate().matrix;
    const r = node.querySelector('rect');
    return { dir: e.dataset.port, child: e.dataset.child, x: end.x, y: end.y,
             box: [m.e, m.f, m.e + r.width.baseVal.value, m.f + r.height.baseVal.value] };
  })
"""


def _expand_block(page: Any) -> list[dict[str, Any]]:
    _node(page, "ns:layer1").dblclick()
    page.wait_for_selector('[data-node-id="ns:layer1/0"]')
    _settle(page)
    _node(page, "ns:layer1/0").dblclick()
    page.wait_for_selector('[data-node-id="add"]')
    _settle(page)
    fit_graph(page)
    edges: list[dict[str, Any]] = page.evaluate(PORT_EDGES_JS, "ns:layer1/0")
    return edges


def _ports(edges: list[dict[str, Any]], direction: str) -> set[str]:
    return {e["child"] for e in edges if e["dir"] == direction}


def test_group_ports_follow_the_servers_entries_and_exits(
    graph_server: str, page: Any, page_log: Any
) -> None:
    # A residual block: x enters at conv1 *and* at the add (the skip connection); the level
    # alone shows only conv1 without a producer, so a guess would miss the add.
    _open(page, graph_server, "resnet")
    edges = _expand_block(page)
    assert _ports(edges, "in") == {"ns:layer1/0/conv1", "add"}
    assert _ports(edges, "out") == {"ns:layer1/0/relu2"}
    for e in edges:
        # Each port edge ends on (starts from) its child's box edge.
        x0, y0, x1, y1 = e["box"]
        assert x0 - 1 <= e["x"] <= x1 + 1, e
        assert (y0 - 2 <= e["y"] <= y0 + 2) if e["dir"] == "in" else (y1 - 2 <= e["y"] <= y1 + 2)
    assert page_log.errors == []


def test_group_ports_fall_back_to_a_guess_without_entries(
    graph_server: str, page: Any, page_log: Any
) -> None:
    # An older server (no entries/exits): the children without a producer / consumer in the
    # level take the port edges.
    def strip(route: Any) -> None:
        resp = route.fetch()
        body = resp.json()
        for n in body.get("nodes", []):
            n.pop("entries", None)
            n.pop("exits", None)
        route.fulfill(response=resp, json=body)

    page.route("**/api/graph/level?*", strip)
    _open(page, graph_server, "resnet")
    edges = _expand_block(page)
    assert _ports(edges, "in") == {"ns:layer1/0/conv1"}
    assert _ports(edges, "out") == {"ns:layer1/0/relu2"}
    assert page_log.errors == []
