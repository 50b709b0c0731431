"""The static graph drawing: renders in Chromium and resvg, escapes hostile labels."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from PIL import Image

from deepscope.graph.collapse import collapse
from deepscope.graph.ir import Edge, Graph, Node, TensorMeta
from deepscope.render.svg_graph import render_png, render_svg
from deepscope.sources.torch_module import graph

sys.path.insert(0, str(Path(__file__).parents[1] / "sources"))
from zoo import ZOO  # noqa: E402

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '<img src=x onerror=window.__x=1>"&\x00\u202e'


def _hostile_graph() -> Graph:
    t = TensorMeta((1, 2), "float32")
    return Graph(
        nodes=[
            Node("a", "input", label=HOSTILE, outputs=[t]),
            Node(
                HOSTILE, "relu", label=HOSTILE, namespace="</svg><script>", inputs=[t], outputs=[t]
            ),
        ],
        edges=[Edge("a", HOSTILE, tensor=t)],
    )


def test_hostile_labels_are_escaped_and_svg_parses() -> None:
    for depth in (None, 1):
        svg = render_svg(_hostile_graph(), depth)
        root = ElementTree.fromstring(svg)  # well-formed XML despite NUL and markup
        assert "<img" not in svg and "<script" not in svg and "\x00" not in svg
        labels = root.iter("{http://www.w3.org/2000/svg}g")
        texts = "".join(t.get("aria-label", "") for t in labels if t.get("class") == "label")
        assert "<img src=x" in texts  # shown as text (outlines, the string in aria-label)
        searchable = ElementTree.fromstring(render_svg(_hostile_graph(), depth, text="svg"))
        texts = "".join(t.text or "" for t in searchable.iter("{http://www.w3.org/2000/svg}text"))
        assert "<img src=x" in texts  # text="svg": <text> elements, escaped


@pytest.mark.parametrize("name,depth", [("resnet", 1), ("resnet", None), ("transformer", 3)])
def test_svg_has_one_node_group_per_collapsed_node(name: str, depth: int | None) -> None:
    model, x = ZOO[name]()
    g = graph(model, x)
    expected = collapse(g, depth) if depth else g
    root = ElementTree.fromstring(render_svg(g, depth))
    groups = [e for e in root.iter("{http://www.w3.org/2000/svg}g") if e.get("class") == "node"]
    assert len(groups) == len(expected.nodes)
    paths = [e for e in root.iter("{http://www.w3.org/2000/svg}path") if e.get("class") == "edge"]
    assert len(paths) == len({(e.src, e.dst) for e in expected.edges})


def test_png_via_resvg_is_non_blank_and_sized_to_the_svg() -> None:
    model, x = ZOO["resnet"]()
    g = graph(model, x)
    png = render_png(g, 2)
    img = Image.open(io.BytesIO(png)).convert("L")
    root = ElementTree.fromstring(render_svg(g, 2))
    assert img.size == (int(root.get("width", "0")), int(root.get("height", "0")))
    assert img.size[1] > 400
    hist = img.histogram()
    dark = sum(hist[:128])
    assert dark > 500, "nodes, text and edges draw dark pixels"
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "resnet_depth2.png").write_bytes(png)


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian chromium at /usr/bin/chromium (make chromium)"
)
def test_svg_renders_in_chromium(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    model, x = ZOO["transformer"]()
    g = graph(model, x)
    svg = render_svg(g, 3)
    hostile = render_svg(_hostile_graph(), None)
    ARTIFACTS.mkdir(exist_ok=True)
    path = tmp_path / "graph.svg"
    path.write_text(svg, encoding="utf-8")
    (tmp_path / "hostile.svg").write_text(hostile, encoding="utf-8")
    args = [
        "--no-sandbox",
        "--headless",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 1200})
            page.goto(path.as_uri())
            count = page.evaluate("document.querySelectorAll('g.node').length")
            assert count == len(collapse(g, 3).nodes)
            shot = ARTIFACTS / "transformer_depth3.png"
            html = browser.new_page(viewport={"width": 800, "height": 1200})
            html.set_content(f"<html><body style='margin:0;background:#fff'>{svg}</body></html>")
            assert html.evaluate("document.querySelectorAll('g.node').length") == count
            html.screenshot(path=str(shot), timeout=120_000)
            page.goto((tmp_path / "hostile.svg").as_uri())
            assert page.evaluate("window.__x === undefined")
            assert page.evaluate("document.querySelectorAll('img, script').length") == 0
        finally:
            browser.close()
    img = Image.open(shot).convert("L")
    assert min(img.getdata()) < 100 and max(img.getdata()) > 200  # ink on a white canvas
