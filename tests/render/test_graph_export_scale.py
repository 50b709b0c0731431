"""Static drawings of long flat graphs: bounded size and shape, every op still reachable,
layout work that grows linearly (counted, never timed)."""

from __future__ import annotations

import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

from deepscope.graph.fold import fold
from deepscope.graph.ir import Edge, Graph
from deepscope.render.layout import layered_layout
from deepscope.render.svg_graph import render_svg

sys.path.insert(0, str(Path(__file__).parents[1] / "graph"))
from test_fold import chain, light, random_ops  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"
LIGHT = [
    "densenet121",
    "resnet50",
    "inception_v1",
    "inception_v2",
    "vgg19",
    "zfnet512",
    "shufflenet",
    "squeezenet",
    "bvlc_alexnet",
]


def drawn(svg: str) -> tuple[float, float, set[str], int]:
    """Canvas width and height, every node id the drawing shows (box ids and the members
    listed in folded boxes' titles), and the number of boxes."""
    root = ElementTree.fromstring(svg)
    shown: set[str] = set()
    boxes = 0
    for g in root.iter(f"{SVG}g"):
        if g.get("class") != "node":
            continue
        boxes += 1
        title = g.find(f"{SVG}title")
        if title is None:
            shown.add(g.get("data-id", ""))
        else:
            shown.update(line.split(" \u2014 ")[0] for line in (title.text or "").split("\n")[1:])
    return float(root.get("width", "0")), float(root.get("height", "0")), shown, boxes


def assert_readable(svg: str, graph: Graph, *, max_px: float, max_bytes: int) -> None:
    w, h, shown, boxes = drawn(svg)
    assert w <= max_px and h <= max_px, (w, h)
    assert 1 / 4 <= w / h <= 4, (w, h)
    assert len(svg.encode()) <= max_bytes
    assert shown == {n.id for n in graph.nodes}  # every op: a box, or listed by its box
    assert boxes <= 130


def test_densenet121_folds_to_a_small_wrapped_drawing() -> None:
    g = light("densenet121")  # 1,748 nodes, no namespaces: was 238,987 px wide, 5.7 MB
    svg = render_svg(g, 2)
    assert_readable(svg, g, max_px=3000, max_bytes=200_000)
    root = ElementTree.fromstring(svg)
    texts = [t.get("aria-label", "") for t in root.iter(f"{SVG}g") if t.get("class") == "label"]
    assert [t for t in texts if "repeated block" in t] == [
        "\u00d76 repeated block",
        "\u00d712 repeated block",
        "\u00d724 repeated block",
        "\u00d716 repeated block",
    ]


@pytest.mark.parametrize("kind", ["periodic", "random"])
def test_flat_chain_of_10k_ops_is_bounded(kind: str) -> None:
    ops = ["linear", "relu", "linear", "gelu", "dropout"] * 2000
    g = chain(ops if kind == "periodic" else random_ops(10_000))
    svg = render_svg(g)
    assert_readable(svg, g, max_px=3000, max_bytes=600_000)


@pytest.mark.parametrize("name", LIGHT)
def test_light_onnx_models_render_bounded(name: str) -> None:
    g = light(name)
    assert_readable(render_svg(g, 2), g, max_px=3000, max_bytes=200_000)


def test_constants_hang_just_above_their_consumer() -> None:
    g = light("vgg19")  # 84 nodes: drawn unfolded; 36 ConstantOfShape weights
    ids = [n.id for n in g.nodes]
    sizes = {i: (120.0, 40.0) for i in ids}
    consts = {n.id for n in g.nodes if n.op == "constant_of_shape"}
    lay = layered_layout(ids, [(e.src, e.dst) for e in g.edges], sizes, hang=consts)
    flat = layered_layout(ids, [(e.src, e.dst) for e in g.edges], sizes)
    for e in g.edges:
        if e.src in consts:  # one row (40 px box + 48 px gap) above the consumer
            assert lay.positions[e.dst][1] - lay.positions[e.src][1] == pytest.approx(88.0)
    assert lay.width < flat.width / 5  # not one row of 36 weights side by side


def test_tall_drawing_wraps_into_columns_with_edges_inside_the_canvas() -> None:
    ids = [f"n{i}" for i in range(80)]
    edges = [(a, b) for a, b in zip(ids, ids[1:], strict=False)] + [("n3", "n70")]
    sizes = {i: (150.0, 40.0) for i in ids}
    lay = layered_layout(ids, edges, sizes, aspect=1.25)
    assert lay.columns >= 3
    assert 0.6 <= lay.width / lay.height <= 2.5
    for src, dst, pts in lay.routes:
        assert all(0 <= x <= lay.width and 0 <= y <= lay.height for x, y in pts)
        assert pts[0] == lay.positions[src] and pts[-1] == lay.positions[dst]
        # edges run downwards; only the gutter and lanes between columns are axis-aligned
        # runs that may go up or sideways
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            assert y1 > y0 or x0 == x1 or y0 == y1
    assert layered_layout(ids, edges, sizes).columns == 1  # aspect=None: never wraps


def test_layout_work_grows_linearly() -> None:
    def work(n: int) -> int:
        ids = [f"n{i}" for i in range(n)]
        edges = [(a, b) for a, b in zip(ids, ids[1:], strict=False)]
        edges += [(ids[i], ids[i + 2]) for i in range(0, n - 2, 5)]  # short skips
        sizes = {i: (100.0, 30.0) for i in ids}
        return layered_layout(ids, edges, sizes, aspect=1.25).work

    w1, w2 = work(2000), work(4000)
    assert 1.8 <= w2 / w1 <= 2.2, (w1, w2)


def test_export_work_is_linear_and_layout_work_bounded_after_folding() -> None:
    def cost(n: int) -> tuple[int, int]:
        f = fold(chain(random_ops(n)))
        ids = [x.id for x in f.nodes]
        lay = layered_layout(
            ids, [(e.src, e.dst) for e in f.edges], {i: (300.0, 60.0) for i in ids}, aspect=1.25
        )
        return int(f.meta["fold"]["work"]), lay.work

    (f1, l1), (f2, l2) = cost(5000), cost(10_000)
    assert 1.8 <= f2 / f1 <= 2.2
    assert l2 <= 1.2 * l1 and l2 < 5000  # the drawing has at most ~60 boxes either way


def test_hostile_names_in_a_folded_group_stay_text() -> None:
    hostile = '<img src=x onerror=alert(1)>"&\x00'
    g = chain(["relu"] * 300)
    for n in g.nodes[1:-1]:
        n.id = n.id + hostile
        n.label = hostile
    g.edges = [Edge(a.id, b.id) for a, b in zip(g.nodes, g.nodes[1:], strict=False)]
    svg = render_svg(g)
    root = ElementTree.fromstring(svg)  # well-formed despite markup and NUL in members
    assert "<img" not in svg and "\x00" not in svg
    titles = "".join(t.text or "" for t in root.iter(f"{SVG}title"))
    assert titles.count("<img src=x") == 600  # each member's id and label, as text
