"""The fast layout (levels over 400 nodes) on a Keras-style DenseNet: every layer is its own
group named by its Keras class, and concatenations take the output of a layer several
layers up. Seen in screenshots of keras.applications.DenseNet121: straight skip edges ran
behind the column of nodes (invisible), titles were cut and overlapped the "+" glyph, and
each box said "group". Now a long edge goes around the nodes between its ends, a title fits
its box, and a group says its class ("Conv2D · 12 params").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import fit_graph, graph_run_server, screenshot, settle_graph

pytestmark = pytest.mark.browser

BLOCKS = 110  # 4 layers each: 440 nodes, over the ELK limit of 400
CLASSES = ["BatchNormalization", "Activation", "Conv2D", "Concatenate"]


def _densenet() -> Any:
    from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta

    t = TensorMeta((1, 8, 8, 16), "float32")
    nodes, edges, types = [], [], {}
    prev = concat = ""
    for b in range(BLOCKS):
        for k, cls in enumerate(CLASSES):
            name = f"conv{b // 10 + 2}_block{b % 10 + 1}_{k}_{cls.lower()[:6]}"
            params = [ParamRef(f"{name}/kernel", (3, 3, 16, 16), "float32")] if k == 2 else []
            nodes.append(
                Node(
                    name, cls.lower(), name, namespace=name, inputs=[t], outputs=[t], params=params
                )
            )
            types[name] = cls
            if prev:
                edges.append(Edge(prev, name, tensor=t))
            if k == 3 and concat:  # the dense connection: the previous block's concat
                edges.append(Edge(concat, name, dst_input=1, tensor=t))
            prev = name
        concat = prev
    g = Graph(nodes=nodes, edges=edges, inputs=[nodes[0].id], outputs=[prev])
    g.meta["moduleTypes"] = types
    return g


@pytest.fixture(scope="module")
def dense_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    graph = _densenet()
    with graph_run_server(tmp_path_factory.mktemp("dense-logdir"), "dense", graph) as url:
        yield url, graph


# For every edge between two nodes: how many of 60 points along it fall inside a node box
# other than its two ends (a straight skip edge crosses the boxes between them).
CROSSINGS = """
() => {
  const boxes = [...document.querySelectorAll('[data-testid=graph-node]')].map((el) => {
    const m = el.transform.baseVal.consolidate().matrix;
    const r = el.querySelector('rect');
    return { id: el.dataset.nodeId, x0: m.e, y0: m.f,
             x1: m.e + r.width.baseVal.value, y1: m.f + r.height.baseVal.value };
  });
  return [...document.querySelectorAll('[data-testid=graph-edge]')].map((e) => {
    const len = e.getTotalLength();
    let hits = 0;
    for (let i = 1; i < 60; i++) {
      const p = e.getPointAtLength((len * i) / 60);
      if (boxes.some((b) => b.id !== e.dataset.src && b.id !== e.dataset.dst &&
                            p.x > b.x0 + 1 && p.x < b.x1 - 1 && p.y > b.y0 + 1 && p.y < b.y1 - 1)) hits++;
    }
    return { src: e.dataset.src, dst: e.dataset.dst, hits };
  });
}
"""

TITLES = """
() => Object.fromEntries([...document.querySelectorAll('[data-testid=graph-node]')]
  .filter((el) => el.querySelector('.gx-label') !== null).map((el) => {
  const [title, sub] = [...el.querySelectorAll('text')].map((t) => t.textContent);
  const glyph = el.querySelector('.gx-glyph');
  const t = el.querySelector('.gx-label').getBBox();
  return [el.dataset.nodeId, { title, sub, titleRight: t.x + t.width,
                               glyphLeft: glyph ? glyph.getBBox().x : null }];
}))
"""


def test_skip_edges_go_around_and_titles_fit(
    dense_server: tuple[str, Any], page: Any, page_log: Any
) -> None:
    url, graph = dense_server
    page.goto(f"{url}/#/graph?runs=dense")
    page.wait_for_selector('[data-testid="graph-node"]', timeout=60_000)
    settle_graph(page)
    fit_graph(page)
    edges: list[dict[str, Any]] = page.evaluate(CROSSINGS)
    assert len(edges) == len(graph.edges)
    dense = [e for e in edges if e["src"].endswith("_concat") and e["dst"].endswith("_concat")]
    assert len(dense) == BLOCKS - 1  # the skip edges, each over 3 layers
    assert [e for e in edges if e["hits"]] == []  # no edge runs behind a node
    # zoomed in on the top, as a person reads it (titles are drawn from this zoom on)
    canvas = page.get_by_test_id("graph-canvas")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 30)
    for _ in range(9):
        page.mouse.wheel(0, -300)
    page.wait_for_timeout(500)
    screenshot(page, "graph_quick_dense_skip_edges")
    titles: dict[str, dict[str, Any]] = page.evaluate(TITLES)
    assert len(titles) >= 6
    for nid, got in titles.items():
        n = graph.node(nid.removeprefix("ns:"))
        assert got["title"] == n.label  # whole: no ellipsis
        assert got["titleRight"] < got["glyphLeft"], nid  # clear of the "+"
        cls = graph.meta["moduleTypes"][n.id]
        assert got["sub"] == (f"{cls} · 2.3k params" if cls == "Conv2D" else cls)
    assert page_log.errors == []
