"""A level whose weights are nodes stays readable in the fast layout (levels over 400 nodes).

onnx's `light_resnet50.onnx` (shipped in the onnx wheel, nobody here wrote it) generates
each of its 239 weights with a ConstantOfShape node. Longest-path layering put all of them
in the first layer: one row ~240 nodes wide with an edge from it to every conv and batch
norm, and the network itself a thin diagonal below (seen in a screenshot). Now a node no
input reaches sits in the layer just above its first consumer, as the static SVG renderer
places it (`render/layout.py`'s `hang`), beside the other inputs of that consumer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import fit_graph, graph_run_server, screenshot, settle_graph

pytestmark = pytest.mark.browser


def _light_resnet() -> Path:
    onnx = pytest.importorskip("onnx")
    path = Path(onnx.__file__).parent / "backend/test/data/light/light_resnet50.onnx"
    if not path.exists():
        pytest.skip("this onnx wheel ships no light_resnet50.onnx")
    return path


@pytest.fixture(scope="module")
def light_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    import deepscope

    graph = deepscope.load_model(_light_resnet()).graph
    with graph_run_server(tmp_path_factory.mktemp("light-logdir"), "light", graph) as url:
        yield url, graph


POSITIONS = """
() => Object.fromEntries([...document.querySelectorAll('[data-testid=graph-node]')].map((el) => {
  const m = el.transform.baseVal.consolidate().matrix;
  return [el.dataset.nodeId, [m.e, m.f, el.querySelector('rect').width.baseVal.value]];
}))
"""


def test_weight_nodes_sit_just_above_their_consumers(
    light_server: tuple[str, Any], page: Any, page_log: Any
) -> None:
    url, graph = light_server
    ops = {n.id: n.op for n in graph.nodes}
    assert len(ops) > 400  # the fast engine's size (ELK_MAX_NODES = 400)
    page.goto(f"{url}/#/graph?runs=light")
    page.wait_for_selector('[data-testid="graph-node"]', timeout=60_000)
    settle_graph(page)
    fit_graph(page)
    screenshot(page, "graph_light_resnet50_fit")
    pos: dict[str, list[float]] = page.evaluate(POSITIONS)
    assert set(pos) == set(ops), "every node of the level is drawn at fit"
    rows = sorted({round(p[1], 1) for p in pos.values()})
    row = {i: rows.index(round(p[1], 1)) for i, p in pos.items()}
    first_row = [i for i in pos if row[i] == 0]
    # the input and the first conv's weight (was: the input and all 239 weights)
    assert sorted(ops[i] for i in first_row) == ["constant_of_shape", "input"]

    consumers: dict[str, list[str]] = {}
    for e in graph.edges:
        consumers.setdefault(e.src, []).append(e.dst)
    gens = [i for i, op in ops.items() if op == "constant_of_shape"]
    assert len(gens) == 239
    width = max(p[2] for p in pos.values())
    for g in gens:
        below = min(row[c] for c in consumers[g])
        assert row[g] == below - 1, (g, row[g], below)  # the layer just above it
        # and near it: within a few node widths of the consumer it feeds first
        first = min(consumers[g], key=lambda c: row[c])
        assert abs(pos[g][0] - pos[first][0]) < 6 * width, g
    # the widest layer is a conv, its batch norm's 4 weights and its own, not 240 nodes
    per_row = [sum(1 for i in pos if row[i] == r) for r in range(len(rows))]
    assert max(per_row) <= 12, max(per_row)
    assert page_log.errors == []
