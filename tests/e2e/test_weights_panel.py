"""The Weights tab and the graph inspector's Weights section in Chromium, over a real run
logged in this module (and a served model file, and a diff): heatmap pixels have the
weights' signs (red positive, blue negative, white-ish at 0), first-layer filters are large
distinct tiles, the step slider switches the logged step, a conv node's inspector shows its
statistics, and colouring the graph by weight norm changes the node colours."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import STATIC_INDEX, canvas_rgba, screenshot

pytestmark = pytest.mark.browser

COLS = 96  # fc input: 6 channels x 4 x 4


def _model() -> Any:
    import torch

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 5)
            self.fc = torch.nn.Linear(COLS, 6)

        def forward(self, x: Any) -> Any:
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    net = Net()
    with torch.no_grad():  # known signs: left third +, middle third 0, right third -
        w = torch.zeros(6, COLS)
        w[:, :32] = torch.linspace(0.5, 1.0, 6)[:, None]
        w[:, 64:] = -torch.linspace(0.5, 1.0, 6)[:, None]
        net.fc.weight.copy_(w)
    return net


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch
    from safetensors.torch import save_file

    import deepscope
    from deepscope.server.runner import serve_in_thread
    from deepscope.server.settings import Settings
    from deepscope.sources.factory import target_graph
    from deepscope.views.kinds.weights import ModelWeightsSource
    from deepscope.views.kinds.weights_diff import DiffWeightsSource

    net = _model()
    root: Path = tmp_path_factory.mktemp("weights-logdir")
    with deepscope.init(logdir=root, name="w") as run:
        run.log_graph(net, torch.zeros(1, 3, 8, 8))
        run.log_weights("weights", deepscope.weights(net), step=0)
        with torch.no_grad():
            net.fc.weight.mul_(2.0)
        run.log_weights("weights", deepscope.weights(net), step=5)
    a, b = root / "a.safetensors", root / "b.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(a))
    with torch.no_grad():
        net.fc.weight[:, 40] += 3.0
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(b))
    urls: dict[str, str] = {}
    stops = []
    for name, settings in {
        "run": Settings(logdir=root),
        "model": Settings(model_graph=target_graph(str(a), []),
                          model_weights=ModelWeightsSource(deepscope.weights(a))),
        "diff": Settings(model_graph=target_graph(str(b), []),
                         model_weights=DiffWeightsSource(deepscope.diff(a, b), labels=("a", "b"))),
    }.items():  # fmt: skip
        urls[name], stop = serve_in_thread(settings)
        stops.append(stop)
    try:
        yield urls
    finally:
        for stop in stops:
            stop()


def _painted(page: Any, selector: str, count: int = 1) -> None:
    page.wait_for_function(
        "([s, n]) => [...document.querySelectorAll(s)].filter(c => c.dataset.painted).length >= n",
        arg=[selector, count],
    )


HEAT = '[data-testid="weights-heatmap"] canvas'


def _rdbu() -> np.ndarray:
    from deepscope.render.colormap import lut

    return lut("rdbu").astype(int)


def test_heatmap_signs_filters_table_and_step_slider(
    page: Any, servers: dict[str, str], page_log: Any
) -> None:
    page.goto(f"{servers['run']}/#/weights?run=w&tensor=fc.weight")
    page.wait_for_selector('[data-testid="panel-weights"] [data-testid="weights-table"]')
    _painted(page, HEAT)
    assert page.get_by_test_id("weights-step-value").inner_text().startswith("5")
    rgba = canvas_rgba(page, HEAT).astype(int)
    assert rgba.shape[:2] == (6, COLS)  # one canvas pixel per weight (no pooling here)
    pos, zero, neg = rgba[5, 10, :3], rgba[5, 48, :3], rgba[5, 80, :3]
    assert pos[0] > 90 and pos[0] > 3 * pos[2] and pos[1] < 30, pos  # +max: dark red
    assert neg[2] > 90 and neg[2] > 3 * neg[0], neg  # -max: dark blue
    assert (np.abs(zero - 247) <= 3).all(), zero  # 0: the centre colour, white-ish
    lut = _rdbu()  # the colours of `Weights.heatmap()` pictures, within rounding
    assert (np.abs(pos - lut[255]) <= 2).all() and (np.abs(neg - lut[0]) <= 2).all()
    weaker = rgba[0, 10, :3]  # +1 of a +-2 scale: index 191, a lighter red
    assert (np.abs(weaker - lut[191]) <= 2).all() and weaker[0] > weaker[2], weaker
    box = page.locator(HEAT).bounding_box()
    assert box["width"] >= 256 and box["height"] >= 16
    page.locator(HEAT).hover(position={"x": 10.5 / COLS * box["width"], "y": box["height"] - 2})
    assert page.get_by_test_id("weights-hover").inner_text() == "row 5, col 10: 2"
    colorbar = page.get_by_test_id("weights-colorbar").inner_text()
    assert "-2" in colorbar and "2" in colorbar
    # the table: a row per tensor, layer rows and a total; sorting by L2 puts fc.weight first
    rows = page.locator('[data-testid="weights-row"]')
    assert rows.count() == 4 and page.get_by_test_id("weights-total-row").count() == 1
    page.get_by_test_id("weights-sort-l2").click()
    assert rows.first.get_attribute("data-tensor") == "fc.weight"
    screenshot(page, "weights_panel_fc")
    # the step slider: step 0 has the weights before they were doubled
    page.get_by_test_id("weights-step").fill("0")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=weights-step-value]')?.innerText.startsWith('0')"
    )
    page.wait_for_function(
        "() => document.querySelector('[data-testid=weights-colorbar]')?.innerText.includes('-1')"
    )
    # first-layer filters: 6 crisp tiles of at least 48 px, all different
    page.locator('[data-testid="weights-row"][data-tensor="conv.weight"]').click()
    tiles = '[data-testid="weights-filter"]'
    _painted(page, tiles, 6)
    assert page.locator(tiles).count() == 6
    for i in range(6):
        b = page.locator(tiles).nth(i).bounding_box()
        assert b["width"] >= 48 and b["height"] >= 48
    pixels = {canvas_rgba(page, tiles, i)[..., :3].tobytes() for i in range(6)}
    assert len(pixels) == 6
    page.wait_for_selector('[data-testid="weights-esd"] canvas[data-painted]')
    assert "alpha = " in page.get_by_test_id("weights-alpha").inner_text()
    screenshot(page, "weights_panel_filters")
    assert page_log.errors == [] and page.evaluate("window.__cspViolations") == []


def _fills(page: Any) -> dict[str, str]:
    return page.eval_on_selector_all(
        '[data-testid="graph-node"]',
        "els => Object.fromEntries(els.map(e => [e.dataset.nodeId,"
        " getComputedStyle(e.querySelector('rect')).fill]))",
    )


def _open_graph(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_selector('[data-testid="panel-graph"] [data-testid="graph-node"]')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=graph-explorer]')?.dataset.busy === 'false'"
    )


def test_graph_inspector_and_colour_by_norm(
    page: Any, servers: dict[str, str], page_log: Any
) -> None:
    _open_graph(page, f"{servers['run']}/#/graph?runs=w")
    ids = page.eval_on_selector_all(
        '[data-testid="graph-node"]', "els => els.map(e => e.dataset.nodeId)"
    )
    conv = next(i for i in ids if "conv" in i)
    page.locator(f'[data-testid="graph-node"][data-node-id="{conv}"]').click()
    section = page.get_by_test_id("inspector-weights")
    section.wait_for()
    stats = section.locator('[data-testid="weights-stats"][data-tensor="conv.weight"]')
    stats.wait_for()
    import deepscope

    l2 = deepscope.weights(_model()).stats()["conv.weight"]["l2"]
    assert stats.get_by_test_id("weights-stat-l2").inner_text() == f"{l2:.4g}"
    _painted(page, '[data-testid="inspector-weights"] [data-testid="weights-filter"]', 6)
    screenshot(page, "weights_graph_inspector")
    before = _fills(page)
    page.get_by_test_id("graph-color").select_option("wt:norm")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=graph-legend]')?.innerText.includes('norm')"
    )
    after = _fills(page)
    fc = next(i for i in ids if "fc" in i)
    assert after[conv] != before[conv] and after[fc] != before[fc] and after[conv] != after[fc]
    plain = [i for i in ids if i not in (conv, fc)]
    assert plain and all(after[i] == "rgb(184, 184, 184)" for i in plain)  # no weights: grey
    screenshot(page, "weights_graph_colour_norm")
    assert page_log.errors == []


def test_view_model_inspector_and_diff_view(
    page: Any, servers: dict[str, str], page_log: Any
) -> None:
    _open_graph(page, f"{servers['model']}/#/graph")
    page.locator('[data-testid="graph-node"][data-node-id="ns:conv"]').click()
    section = page.get_by_test_id("inspector-weights")
    section.locator('[data-testid="weights-stats"][data-tensor="conv.weight"]').wait_for()
    _painted(page, '[data-testid="inspector-weights"] [data-testid="weights-filter"]', 6)
    screenshot(page, "weights_view_model_inspector")
    # the diff: only fc.weight changed; its delta heatmap is +3 in column 40 only
    page.goto(f"{servers['diff']}/#/weights")
    page.wait_for_selector('[data-testid="weights-diff-list"]')
    assert page.get_by_test_id("weights-diff-list").inner_text().strip() == "changed fc.weight"
    row = page.locator('[data-testid="weights-row"][data-tensor="fc.weight"]').inner_text()
    assert "changed" in row and f"{np.sqrt(6 * 9):.4g}" in row  # ||delta||: +3 in 6 weights
    page.get_by_test_id("weights-sort-relDelta").click()
    first = page.locator('[data-testid="weights-row"]').first
    assert first.get_attribute("data-tensor") == "fc.weight"
    delta = '[data-testid="weights-delta"] canvas'
    _painted(page, delta)
    rgba = canvas_rgba(page, delta).astype(int)
    assert rgba.shape[:2] == (6, COLS)
    assert rgba[2, 40, 0] > 90 and rgba[2, 40, 2] < 60  # +3: dark red
    assert (np.abs(rgba[2, 41, :3] - 247) <= 3).all()  # unchanged: white-ish
    screenshot(page, "weights_diff_view")
    _open_graph(page, f"{servers['diff']}/#/graph")
    page.get_by_test_id("graph-color").select_option("wt:reldelta")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=graph-legend]')?.innerText.includes('relative')"
    )
    fills = _fills(page)
    assert fills["ns:fc"] != fills["ns:conv"]
    assert page_log.errors == []


def test_view_model_run_tabs_say_what_they_need(
    page: Any, servers: dict[str, str], page_log: Any
) -> None:
    """`deepscope view MODEL` opens no run: a run tab says so and links the model's tabs,
    instead of "pick runs in the Runs tab" (there are none to pick)."""
    page.goto(f"{servers['model']}/#/activations")
    note = page.get_by_test_id("model-only")
    note.wait_for()
    text = note.inner_text()
    assert text.startswith("Activations shows what training runs log")
    assert "--inputs DATA" in text and "deepscope serve LOGDIR" in text
    assert "pick runs" not in page.locator("main").inner_text()
    idle = page.eval_on_selector_all(".tab.idle", "els => els.map(e => e.dataset.testid)")
    assert "tab-graph" not in idle and "tab-weights" not in idle
    assert {"tab-runs", "tab-scalars", "tab-activations", "tab-projector"} <= set(idle)
    screenshot(page, "view_model_run_tab")
    note.get_by_role("link", name="Weights").click()
    page.wait_for_selector('[data-testid="weights-row"]')  # the served model's tensors
    assert page.get_by_test_id("model-only").count() == 0
    # a log directory's dashboard is unchanged: no such note, no idle tab
    page.goto(f"{servers['run']}/#/scalars")
    page.wait_for_selector(".tab.active")
    page.wait_for_timeout(300)
    assert page.get_by_test_id("model-only").count() == 0
    assert page.locator(".tab.idle").count() == 0
    assert page_log.errors == []
