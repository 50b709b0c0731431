"""The graph drawing for papers (`render_svg`, default ``text="paths"``): node labels are
glyph outlines, no ``<text>``; Chromium draws their ink where it draws the ``<text>``
version's ink in every node box; the PNG export (resvg) shows it too, with no font needed."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest
from PIL import Image

from deepscope.graph.collapse import collapse
from deepscope.render.labels import node_lines
from deepscope.render.svg_graph import render_png, render_svg
from deepscope.sources.torch_module import graph

sys.path.insert(0, str(Path(__file__).parents[1] / "sources"))
from zoo import ZOO  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}href"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")


def _resnet() -> tuple[str, str, int]:
    model, x = ZOO["resnet"]()
    g = graph(model, x)
    return render_svg(g, 1), render_svg(g, 1, text="svg"), len(collapse(g, 1).nodes)


def _boxes(svg: str) -> list[tuple[float, float, float, float]]:
    """Each node's box (x, y, w, h): the last ``<rect>`` of its group (the card in front)."""
    root = ElementTree.fromstring(svg)
    out = []
    for g in root.iter(f"{SVG}g"):
        if g.get("class") == "node":
            r = g.findall(f"{SVG}rect")[-1]
            out.append(tuple(float(r.get(k, "0")) for k in ("x", "y", "width", "height")))
    return out  # type: ignore[return-value]


def test_labels_are_outlines_one_use_per_glyph() -> None:
    model, x = ZOO["resnet"]()
    g = graph(model, x)
    svg = render_svg(g, 1)
    root = ElementTree.fromstring(svg)
    assert root.findall(f".//{SVG}text") == []
    defined = {p.get("id") for p in root.iter(f"{SVG}path") if p.get("id")}
    nodes = [e for e in root.iter(f"{SVG}g") if e.get("class") == "node"]
    expected = {n.id: node_lines(n) for n in collapse(g, 1).nodes}
    assert len(nodes) == len(expected)
    for node in nodes:
        lines = [e for e in node.findall(f"{SVG}g") if e.get("class") == "label"]
        assert [e.get("aria-label") for e in lines] == expected[node.get("data-id", "")]
        for line in lines:
            uses = line.findall(f"{SVG}use")
            assert len(uses) == sum(not ch.isspace() for ch in line.get("aria-label", ""))
            assert all(u.get(XLINK, "")[1:] in defined for u in uses)
    # the glyphs are defined once each, however often they are used
    assert len(defined) == len({ch for lines in expected.values() for t in lines for ch in t
                                if not ch.isspace()})  # fmt: skip
    with pytest.raises(ValueError, match="'paths'"):
        render_svg(g, 1, text="html")  # type: ignore[arg-type]


def _ink_boxes(shot: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> list[Any]:
    """Per node box: (centroid x, centroid y, top, bottom, width, count) of the label ink
    (pixels darker than the light box fills, 3 px inside the box's border)."""
    out = []
    for x, y, w, h in boxes:
        x0, y0, x1, y1 = round(x) + 3, round(y) + 3, round(x + w) - 3, round(y + h) - 3
        ink = shot[y0:y1, x0:x1].mean(axis=2) < 150
        ys, xs = np.nonzero(ink)
        assert len(xs) > 20, (x, y, "no label ink in this box")
        out.append((xs.mean() + x0, ys.mean() + y0, ys.min() + y0, ys.max() + y0,
                    xs.max() - xs.min() + 1, len(xs)))  # fmt: skip
    return out


@pytest.mark.browser
def test_outlines_draw_where_text_draws_in_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    paths_svg, text_svg, _ = _resnet()
    assert "<text" not in paths_svg and "<text" in text_svg
    root = ElementTree.fromstring(paths_svg)
    w, h = int(root.get("width", "0")), int(root.get("height", "0"))
    shots = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": w, "height": h})
            for name, svg in (("paths", paths_svg), ("text", text_svg)):
                (tmp_path / f"{name}.svg").write_text(svg, encoding="utf-8")
                html = tmp_path / f"{name}.html"
                html.write_text(f'<body style="margin:0;background:#fff"><img id="f" '
                                f'src="{name}.svg" style="display:block"></body>')  # fmt: skip
                page.goto(html.as_uri())
                page.wait_for_function("() => document.getElementById('f').complete")
                shots[name] = page.screenshot()
        finally:
            browser.close()
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "figure-graph-outlines.png").write_bytes(shots["paths"])
    (SHOTS / "figure-graph-text.png").write_bytes(shots["text"])
    a = np.asarray(Image.open(io.BytesIO(shots["paths"])).convert("RGB"))
    b = np.asarray(Image.open(io.BytesIO(shots["text"])).convert("RGB"))
    boxes = _boxes(paths_svg)
    assert boxes == _boxes(text_svg)  # the same layout either way
    for got, ref in zip(_ink_boxes(a, boxes), _ink_boxes(b, boxes), strict=True):
        assert abs(got[0] - ref[0]) < 2.0 and abs(got[1] - ref[1]) < 1.5, (got, ref)
        assert abs(got[2] - ref[2]) <= 2 and abs(got[3] - ref[3]) <= 2, (got, ref)
        # Chromium's first line is DejaVu Sans Bold, ours the regular outlines stroked
        assert 0.85 < got[4] / ref[4] < 1.1 and 0.6 < got[5] / ref[5] < 1.4, (got, ref)


def test_png_export_draws_the_outlined_labels() -> None:
    pytest.importorskip("resvg_py")
    paths_svg, _, n = _resnet()
    model, x = ZOO["resnet"]()
    png = Image.open(io.BytesIO(render_png(graph(model, x), 1))).convert("RGB")
    root = ElementTree.fromstring(paths_svg)
    assert png.size == (int(root.get("width", "0")), int(root.get("height", "0")))
    SHOTS.mkdir(parents=True, exist_ok=True)
    png.save(SHOTS / "figure-graph-png.png")
    boxes = _boxes(paths_svg)
    assert len(boxes) == n
    _ink_boxes(np.asarray(png), boxes)  # label ink inside every node box


def test_outlined_graph_drawing_needs_neither_numpy_nor_pillow() -> None:
    import subprocess

    code = (
        "import sys\n"
        "from deepscope.graph.ir import Graph, Node\n"
        "from deepscope.render.svg_graph import render_svg\n"
        "svg = render_svg(Graph(nodes=[Node('a', 'relu', label='conv1')]))\n"
        "assert '<use ' in svg and '<text' not in svg\n"
        "print(sorted(m for m in ('numpy', 'PIL', 'torch') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # the base install (no arrays extra) draws graphs
