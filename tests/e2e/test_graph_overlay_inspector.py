"""The graph inspector shows the selected node's training-overlay value (#18) in real
Chromium: coloured by gradient norm with the scrubber at step k, the inspector of a
selected layer shows the value logged at step k (read back from the store: the
`grad_norm/<param>` scalars watch wrote beside the overlay), follows the scrubber, draws a
sparkline over every logged step, and a node no watched value maps to says so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import STATIC_INDEX, ServerThread, screenshot
from test_graph_overlays import STEPS, _cnn, colour_by, logged_grad_norms, open_graph, scrub_to

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def cnn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch
    import torch.nn.functional as F

    import deepscope

    root = tmp_path_factory.mktemp("overlay-inspector")
    model = _cnn()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 3, 8, 8, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    with deepscope.init(logdir=root, name="cnn") as run:
        run.log_graph(model, x[:1])
        run.watch(model, every=1)
        for step in range(STEPS):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log({"loss": loss.item()}, step=step)
    _onnx_run(root)
    with ServerThread(root) as server:
        yield server.url, root


def _onnx_run(root: Path) -> None:
    """A watched torch model whose logged graph is its ONNX export (BatchNorm folded away)."""
    import torch
    from torch import nn

    import deepscope

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 6 * 6, 3))  # fmt: skip
    x = torch.randn(4, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    path = root / "model.onnx"
    model.eval()
    torch.onnx.export(model, (x[:1],), str(path), dynamo=False)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    with deepscope.init(logdir=root, name="onnx") as run:
        run.log_graph(str(path))
        run.watch(model, every=1)
        for step in range(2):
            loss = model(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log({"loss": float(loss.detach())}, step=step)


def _select(page: Any, node_id: str) -> None:
    page.locator(f'[data-testid="graph-node"][data-node-id="{node_id}"]').click()
    page.wait_for_function(
        "(id) => document.querySelector('[data-testid=graph-inspector]')?.dataset.nodeId === id",
        arg=node_id,
    )


def _shown(page: Any, step: int) -> float:
    page.wait_for_function(
        "(s) => { const e = document.querySelector('[data-testid=inspector-overlay-value]');"
        " return e !== null && e.dataset.step === String(s) && e.dataset.value !== ''; }",
        arg=step,
    )
    cell = page.get_by_test_id("inspector-overlay-value")
    # the text is the formatted number; data-value is the exact one behind it
    assert cell.inner_text().strip() not in ("", "—", "…")
    return float(cell.get_attribute("data-value") or "nan")


def test_inspector_shows_the_selected_nodes_value_at_the_scrubbed_step(
    page: Any, page_log: Any, cnn_server: tuple[str, Path]
) -> None:
    url, root = cnn_server
    open_graph(page, url, "cnn")
    colour_by(page, "gradient norm")
    scrub_to(page, 1)
    _select(page, "ns:2")  # the second conv
    assert page.get_by_test_id("inspector-overlay").get_attribute("data-series") == "grad_norm"
    assert _shown(page, 1) == pytest.approx(logged_grad_norms(root, 1)["2"], rel=1e-9)
    spark = page.get_by_test_id("inspector-overlay-spark")
    spark.wait_for()
    assert spark.get_attribute("data-points") == str(STEPS)  # one point per logged step
    b = spark.bounding_box()
    assert b is not None and b["width"] >= 200 and b["height"] >= 30, b
    screenshot(page, "graph-overlay-inspector-step1")
    scrub_to(page, STEPS - 1)  # the inspector follows the scrubber
    last = _shown(page, STEPS - 1)
    assert last == pytest.approx(logged_grad_norms(root, STEPS - 1)["2"], rel=1e-9)
    assert last != pytest.approx(logged_grad_norms(root, 1)["2"], rel=1e-6)
    _select(page, "ns:0")  # another layer: its own value
    assert _shown(page, STEPS - 1) == pytest.approx(
        logged_grad_norms(root, STEPS - 1)["0"], rel=1e-9
    )
    _select(page, "ns:1")  # a ReLU has no gradient norm: said, not left blank
    why = page.get_by_test_id("inspector-overlay-why")
    why.wait_for()
    assert "no watched layer maps to this node" in why.inner_text()
    assert page.get_by_test_id("inspector-overlay-value").inner_text().strip() == "—"
    screenshot(page, "graph-overlay-inspector-relu")
    assert page_log.errors == []


def test_inspector_names_the_watched_layers_the_onnx_graph_lost(
    page: Any, page_log: Any, cnn_server: tuple[str, Path]
) -> None:
    pytest.importorskip("onnx")
    url, _ = cnn_server
    open_graph(page, url, "onnx")
    colour_by(page, "activation std")
    ids = page.eval_on_selector_all(
        '[data-testid="graph-node"]', "els => els.map(e => e.dataset.nodeId)"
    )
    relu = next(i for i in ids if i in ("ns:2", "n2"))  # the ReLU (namespace 2)
    _select(page, relu)
    assert _shown(page, 1) > 0  # mapped: a value
    conv = next(i for i in ids if i in ("ns:0", "n0"))
    _select(page, conv)
    assert _shown(page, 1) > 0
    assert not {"ns:1", "n1"} & set(ids)  # the BatchNorm (namespace 1) was folded away
    colour_by(page, "gradient norm")
    _select(page, relu)  # no gradient norm on a ReLU, and the BatchNorm's is lost: said so
    why = page.get_by_test_id("inspector-overlay-why")
    why.wait_for()
    text = why.inner_text()
    assert "no watched layer maps to this node" in text
    assert "1 watched layer maps to no node of this graph" in text and text.endswith(": 1")
    screenshot(page, "graph-overlay-inspector-onnx-unmapped")
    assert page_log.errors == []
