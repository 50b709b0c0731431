"""Training overlays on the graph (#18) in real Chromium: a small CNN trained here with
`run.watch`, and the demo's diverging run (`deepscope.demo.train.train_diverging`, the
same function `deepscope demo` runs, on the demo's digits).

- colour by gradient norm: the scrubber at step k colours each node with the value
  logged at step k (read back from the store: the `grad_norm/<param>` scalars watch wrote
  beside the overlay), checked on the screenshot's pixels against the legend's scale;
  two steps give two colours; nodes without a value are neutral grey;
- the diverging run: the first-NaN layer is badged from its step on, not before;
- the Events panel: clicking that event opens the graph with that node selected;
- linked selection: selecting a graph node filters the Histograms panel (with a chip).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import STATIC_INDEX, ServerThread, open_tab, screenshot

pytestmark = pytest.mark.browser

STEPS = 5
NEUTRAL = (0xB8, 0xB8, 0xB8)  # colorScale.NO_VALUE
RAMP = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]


def ramp(t: float) -> tuple[int, int, int]:
    """colorScale.sequential, written again here."""
    u = min(1.0, max(0.0, t)) * (len(RAMP) - 1)
    i = min(len(RAMP) - 2, int(u))
    f = u - i
    return tuple(round(a + (b - a) * f) for a, b in zip(RAMP[i], RAMP[i + 1], strict=True))  # type: ignore[return-value]


def expected_rgb(value: float, lo: float, hi: float, scale: str) -> tuple[int, int, int]:
    if scale == "log":
        value, lo, hi = np.log10(value), np.log10(lo), np.log10(hi)
    return ramp(1.0 if hi == lo else (value - lo) / (hi - lo))


def _cnn() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )  # fmt: skip


@pytest.fixture(scope="module")
def overlay_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch
    import torch.nn.functional as F

    import deepscope
    from deepscope.demo.data import load_digits
    from deepscope.demo.train import train_diverging

    root = tmp_path_factory.mktemp("overlays-e2e")
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
    train_diverging(root, load_digits(), progress=False)
    with ServerThread(root) as server:
        yield server.url, root


def logged_grad_norms(root: Path, step: int) -> dict[str, float]:
    """What watch logged at `step`, read from the store: module namespace -> grad norm."""
    from deepscope.graph.namespace import owner_namespace
    from deepscope.store.reader import open_store

    reader = open_store(root).run("cnn")
    out: dict[str, float] = {}
    for tag in reader.tags():
        name = tag.tag
        if tag.kind == "scalar" and name.startswith("grad_norm/") and name.endswith(".weight"):
            (row,) = [r for r in reader.scalars(name) if r.step == step]
            out[owner_namespace(name[len("grad_norm/") :])] = float(row.value)
    return out


def pixel(page: Any, node_id: str) -> tuple[int, int, int]:
    """The fill of a node's box on the screen (left edge, inside the stroke, below no text)."""
    from PIL import Image

    box = page.locator(f'[data-testid="graph-node"][data-node-id="{node_id}"] rect.gx-box')
    b = box.bounding_box()
    assert b is not None and b["width"] > 8 and b["height"] > 8, b
    clip = {
        "x": b["x"] + 2,
        "y": b["y"] + b["height"] * 0.35,
        "width": 3,
        "height": b["height"] * 0.3,
    }
    img = np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"))
    px = np.median(img.reshape(-1, 3), axis=0)
    return int(px[0]), int(px[1]), int(px[2])


def close(a: tuple[int, int, int], b: tuple[int, int, int], tol: int = 4) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def open_graph(page: Any, url: str, run: str) -> None:
    open_tab(page, url, "graph", [run])
    page.wait_for_selector('[data-testid="graph-node"]')
    page.wait_for_function(
        "() => document.querySelector('[data-testid=graph-explorer]').dataset.busy === 'false'"
    )


def colour_by(page: Any, label: str) -> None:
    select = page.get_by_test_id("graph-color")
    page.wait_for_function(
        "(l) => [...document.querySelectorAll('[data-testid=graph-color] option')]"
        ".some(o => o.textContent === l)",
        arg=label,
    )
    select.select_option(label=label)


def scrub_to(page: Any, step: int) -> None:
    steps_max = int(page.get_by_test_id("overlay-scrubber").get_attribute("max") or 0)
    page.get_by_test_id("overlay-scrubber").fill(str(min(step, steps_max)))
    page.wait_for_function(
        "(s) => document.querySelector('[data-testid=graph-legend]')?.dataset.step === String(s)",
        arg=step,
    )


def legend(page: Any) -> tuple[float, float, str]:
    el = page.get_by_test_id("graph-legend")
    return (
        float(el.get_attribute("data-lo")),
        float(el.get_attribute("data-hi")),
        str(el.get_attribute("data-scale")),
    )


def test_scrubber_colours_nodes_with_the_values_logged_at_that_step(
    page: Any, page_log: Any, overlay_server: tuple[str, Path]
) -> None:
    url, root = overlay_server
    open_graph(page, url, "cnn")
    options = page.eval_on_selector_all(
        '[data-testid="graph-color"] option', "os => os.map(o => o.textContent)"
    )
    for label in ("gradient norm", "update ratio", "dead fraction", "activation std"):
        assert label in options, options
    colour_by(page, "gradient norm")
    seen: dict[int, tuple[int, int, int]] = {}
    for step in (0, STEPS - 1):
        scrub_to(page, step)
        logged = logged_grad_norms(root, step)
        assert set(logged) == {"0", "2", "5"}, logged
        lo, hi, scale = legend(page)
        # the legend's numbers are the range of what is shown: the logged values
        assert lo == pytest.approx(min(logged.values()), rel=1e-9)
        assert hi == pytest.approx(max(logged.values()), rel=1e-9)
        for ns, value in logged.items():
            want = expected_rgb(value, lo, hi, scale)
            got = pixel(page, f"ns:{ns}")
            assert close(got, want), (step, ns, value, got, want)
        # a ReLU has no gradient norm: neutral
        assert close(pixel(page, "ns:1"), NEUTRAL), pixel(page, "ns:1")
        seen[step] = pixel(page, "ns:2")
        screenshot(page, f"graph-overlay-grad-norm-step{step}")
    assert not close(seen[0], seen[STEPS - 1], tol=10), seen
    assert page_log.errors == []


def test_diverging_run_badges_the_first_nan_layer_at_its_step(
    page: Any, page_log: Any, overlay_server: tuple[str, Path]
) -> None:
    url, root = overlay_server
    events = [e for e in _events(root) if e.kind == "nonfinite_activation"]
    assert len(events) == 1
    first = events[0]
    assert first.layer == "classifier.3"
    open_graph(page, url, "digits-cnn-lr20")
    colour_by(page, "first non-finite step")
    nan_badge = '[data-testid="graph-badge"][data-kind="nonfinite_activation"]'
    scrub_to(page, first.step - 1)
    assert page.locator(nan_badge).count() == 0
    scrub_to(page, first.step)
    page.wait_for_selector(nan_badge)
    assert page.locator(nan_badge).get_attribute("data-node-id") == "ns:classifier"
    assert page.locator(nan_badge).get_attribute("data-step") == str(first.step)
    # open the group: the badge moves to the layer itself
    page.locator('[data-testid="graph-node"][data-node-id="ns:classifier"]').dblclick()
    page.wait_for_selector(f'{nan_badge}[data-node-id="ns:classifier/3"]')
    screenshot(page, "graph-overlay-first-nan-badge")
    assert page_log.errors == []


def test_clicking_the_event_selects_its_node_in_the_graph(
    page: Any, page_log: Any, overlay_server: tuple[str, Path]
) -> None:
    url, _ = overlay_server
    open_tab(page, url, "events", ["digits-cnn-lr20"])
    row = page.locator('[data-testid="event-row"]', has_text="first NaN/Inf output")
    row.wait_for()
    row.get_by_test_id("event-layer-link").click()
    page.wait_for_selector('[data-testid="panel-graph"]')
    node = page.locator('[data-testid="graph-node"][data-node-id="classifier_3"]')
    node.wait_for()
    page.wait_for_function(
        "() => document.querySelector('[data-node-id=classifier_3]')?.classList.contains('gx-selected')"
    )
    # centred: the node's middle lies near the middle of the canvas
    canvas = page.get_by_test_id("graph-canvas").bounding_box()
    box = node.bounding_box()
    assert canvas is not None and box is not None
    assert abs((box["x"] + box["width"] / 2) - (canvas["x"] + canvas["width"] / 2)) < 40
    screenshot(page, "graph-overlay-event-link")
    # the graph's selection now filters the Events panel, with a chip to clear it
    page.get_by_test_id("tab-events").click()
    chip = page.get_by_test_id("layer-filter-chip")
    chip.wait_for()
    assert chip.get_attribute("data-layer") == "classifier/3"
    page.locator('[data-testid="event-row"]').first.wait_for()
    layers = page.eval_on_selector_all(
        '[data-testid="event-row"]', "rs => rs.map(r => r.dataset.layer)"
    )
    assert layers and all(
        x in ("classifier.3", "classifier.3.weight", "classifier.3.bias") for x in layers
    ), layers
    screenshot(page, "events-filtered-by-layer")
    page.get_by_test_id("layer-filter-clear").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=layer-filter-chip]') === null"
    )
    assert page.locator('[data-testid="event-row"]').count() > len(layers)
    assert page_log.errors == []


def test_graph_selection_filters_histograms(
    page: Any, page_log: Any, overlay_server: tuple[str, Path]
) -> None:
    url, _ = overlay_server
    open_graph(page, url, "cnn")
    page.locator('[data-testid="graph-node"][data-node-id="ns:2"]').click()
    page.get_by_test_id("tab-histograms").click()
    page.get_by_test_id("layer-filter-chip").wait_for()
    page.wait_for_selector('[data-testid="histogram-chart"]')
    tags = page.eval_on_selector_all(
        '[data-testid="histogram-chart"]', "cs => cs.map(c => c.dataset.tag)"
    )
    assert sorted(tags) == [
        "grads/2.bias",
        "grads/2.weight",
        "weights/2.bias",
        "weights/2.weight",
    ], tags
    screenshot(page, "histograms-filtered-by-layer")
    # and the Scalars panel: watch's per-layer charts of that layer only, opened
    page.get_by_test_id("tab-scalars").click()
    page.get_by_test_id("layer-filter-chip").wait_for()
    page.wait_for_selector('[data-testid="scalar-chart"]')
    tags = page.eval_on_selector_all(
        '[data-testid="scalar-chart"]', "cs => cs.map(c => c.dataset.tag)"
    )
    assert sorted(tags) == [
        "act/2/mean", "act/2/std", "act/2/zero_frac",
        "grad_norm/2.bias", "grad_norm/2.weight", "update_ratio/2.weight",
        "weight_norm/2.bias", "weight_norm/2.weight",
    ], tags  # fmt: skip
    page.get_by_test_id("tab-histograms").click()
    page.get_by_test_id("layer-filter-chip").wait_for()
    page.get_by_test_id("layer-filter-clear").click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=histogram-chart]').length > 4"
    )
    # the pointer resting on a chart marks its layer in the graph (the tab is switched
    # without moving the pointer, as a keyboard user would)
    page.locator('[data-testid="histogram-chart"][data-tag="weights/2.weight"]').hover()
    page.evaluate("document.querySelector('[data-testid=tab-graph]').click()")
    page.wait_for_selector('[data-node-id="ns:2"].gx-linked')
    assert page.locator(".gx-linked").count() == 1
    screenshot(page, "graph-linked-hover")
    assert page_log.errors == []


def _events(root: Path) -> list[Any]:
    from deepscope.store.reader import open_store

    return list(open_store(root).run("digits-cnn-lr20").events(limit=1000))
