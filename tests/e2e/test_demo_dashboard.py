"""The dashboard over the demo's logdir: every panel shows the demo's data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e_support import STATIC_INDEX, ServerThread, open_tab, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUNS = ["digits-cnn", "digits-cnn-lr20"]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    from deepscope.demo import run_demo

    logdir = tmp_path_factory.mktemp("demo-e2e")
    run_demo(logdir, progress=False, epochs=3)
    with ServerThread(logdir) as server:
        yield server.url


def _count(page: Any, testid: str) -> int:
    return int(page.locator(f'[data-testid="{testid}"]').count())


def test_every_panel_shows_the_demo(page: Any, demo_url: str) -> None:
    open_tab(page, demo_url, "runs", RUNS)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=run-row]').length === 2")
    screenshot(page, "demo-runs")

    open_tab(page, demo_url, "scalars", RUNS)
    loss = page.locator('[data-testid="scalar-chart"][data-tag="train/loss"]')
    loss.wait_for()
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=scalar-chart][data-tag=\"train/loss\"]')"
        "?.getAttribute('data-points') || 0) > 50"
    )
    assert _count(page, "scalar-chart") >= 3
    screenshot(page, "demo-scalars")

    open_tab(page, demo_url, "histograms", ["digits-cnn"])
    page.locator('[data-testid="histogram-chart"]').first.wait_for()
    assert _count(page, "histogram-chart") >= 10
    screenshot(page, "demo-histograms")

    open_tab(page, demo_url, "images", ["digits-cnn"])
    img = page.locator('[data-testid="image-card"] img').first
    img.wait_for()
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=image-card] img');"
        " return i && i.complete && i.naturalWidth === 144; }"
    )
    screenshot(page, "demo-images")

    open_tab(page, demo_url, "graph", ["digits-cnn"])
    page.locator('[data-testid="graph-node"]').first.wait_for(timeout=30_000)
    labels = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=graph-node]')].map(e => e.textContent)"
    )
    assert any("features" in t for t in labels) and any("classifier" in t for t in labels)
    screenshot(page, "demo-graph")

    open_tab(page, demo_url, "events", ["digits-cnn-lr20"])
    page.locator('[data-testid="event-row"]').first.wait_for()
    text = " ".join(page.locator('[data-testid="event-row"]').all_inner_texts())
    assert "nonfinite_activation" in text and "exploding_gradients" in text
    screenshot(page, "demo-events")

    open_tab(page, demo_url, "attribution", ["digits-cnn"])
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=panel-attribution] img')]"
        ".some(i => i.complete && i.naturalWidth > 0)"
    )
    screenshot(page, "demo-attribution")
