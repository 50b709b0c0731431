"""An expanded group's dashed outline in real Chromium, zoomed far out (issue #18).

The outline is dashed in screen pixels (non-scaling stroke): zoomed out on a group of
hundreds of ops it stays a visible 1 px dashed line, and it is a few hundred dashes instead
of tens of thousands in scene units, which made every recolour of the zoomed-out graph (a
scrubber step) re-rasterise for hundreds of milliseconds. Checked on the screenshot's
pixels with the group selected (its outline 3 px, blue): along the box's left edge, dark
dashes alternate with light gaps; in scene units that stroke would be 0.1 px, invisible.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from e2e_support import fit_graph, graph_run_server, screenshot, settle_graph

pytestmark = pytest.mark.browser

OPS = 300


def _tall_group() -> Any:
    """One input, then a chain of ``OPS`` ops inside group ``big``: a tall, narrow box."""
    from deepscope.graph.ir import Edge, Graph, Node, TensorMeta

    t = TensorMeta((1, 8), "float32")
    nodes = [Node("in", "input", "in", outputs=[t])]
    nodes += [
        Node(f"o{i}", "relu", f"r{i}", namespace="big", inputs=[t], outputs=[t]) for i in range(OPS)
    ]
    edges = [Edge("in", "o0", tensor=t)] + [
        Edge(f"o{i}", f"o{i + 1}", tensor=t) for i in range(OPS - 1)
    ]
    return Graph(nodes=nodes, edges=edges, inputs=["in"], outputs=[f"o{OPS - 1}"])


@pytest.fixture(scope="module")
def outline_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with graph_run_server(tmp_path_factory.mktemp("outline-logdir"), "tall", _tall_group()) as url:
        yield url


def _edge_rows(page: Any, selector: str) -> np.ndarray:
    """Per screen row along the middle of the box's left edge: the darkest luminance."""
    from PIL import Image

    b = page.locator(selector).bounding_box()
    assert b is not None and b["height"] > 200, b
    clip = {
        "x": b["x"] - 2,
        "y": b["y"] + b["height"] * 0.3,
        "width": 5,
        "height": b["height"] * 0.4,
    }
    img = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"), dtype=float)
    lum = img @ np.array([0.2126, 0.7152, 0.0722])
    return lum.min(axis=1)


def test_expanded_group_outline_stays_a_visible_dashed_line_when_zoomed_far_out(
    page: Any, page_log: Any, outline_server: str
) -> None:
    page.goto(f"{outline_server}/#/graph?runs=tall")
    group = '[data-testid="graph-node"][data-node-id="ns:big"]'
    page.wait_for_selector(group)
    settle_graph(page)
    page.locator(group).dblclick()
    page.wait_for_function(
        "(s) => document.querySelector(s)?.dataset.expanded === 'true'", arg=group
    )
    settle_graph(page)
    fit_graph(page)
    page.wait_for_selector(f"{group}.gx-selected")  # the double-click selected it
    scale = page.evaluate(
        "() => Number(/scale\\(([^)]+)\\)/.exec(document.querySelector('.gx-canvas > g')"
        ".getAttribute('transform'))[1])"
    )
    assert scale < 0.1, scale  # far out: a 1-unit stroke in scene units would be invisible
    rows = _edge_rows(page, f"{group} > rect.gx-box")
    dark = rows < 150  # the selected outline's #1565c0 is ~90; the light fills, background > 190
    # a dashed line: dashes (4 px) and gaps (3 px) alternate down the edge
    assert 0.35 < dark.mean() < 0.85, (dark.mean(), rows[:40])
    runs = np.count_nonzero(np.diff(dark.astype(int)) == 1)
    assert runs > len(rows) / 14, (runs, len(rows))
    screenshot(page, "graph-outline-zoomed-out")
    assert page_log.errors == []
