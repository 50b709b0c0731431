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
    # The user's sections come first and open; run.watch's come after, collapsed.
    sections = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=scalar-section]')]"
        ".map(s => [s.dataset.prefix, s.dataset.collapsed])"
    )
    user = [["test", "false"], ["train", "false"], ["transformer", "false"]]
    assert sections[:3] == user, sections
    assert [p for p, c in sections[3:]] == ["grad_norm", "update_ratio", "weight_norm", "act"]
    assert all(c == "true" for p, c in sections[3:]), sections
    tags = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=scalar-chart]')].map(c => c.dataset.tag)"
    )
    assert tags == ["test/accuracy", "test/loss", "train/accuracy", "train/loss",
                    "transformer/reverse_accuracy"], tags  # fmt: skip
    screenshot(page, "demo-scalars")
    # Opened, a watch section draws both runs; the diverging run's 1e20-ish values do not
    # flatten the healthy one (outliers are left out of the y range by default).
    page.locator('[data-testid="scalar-section"][data-prefix="grad_norm"] button').first.click()
    total = '[data-testid="scalar-chart"][data-tag="grad_norm/total"]'
    page.wait_for_function(
        f"() => Number(document.querySelector('{total}')?.dataset.points || 0) > 10"
    )
    page.wait_for_timeout(200)
    scale = page.evaluate("window.__deepscope.scale('grad_norm/total')")
    assert scale["max"] is not None and scale["max"] < 1e6, scale
    screenshot(page, "demo-scalars-watch")

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
    grid = page.locator('[data-testid="attribution-grid"]')
    grid.wait_for()
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('[data-testid=panel-attribution] img')];"
        " return imgs.length >= 32 && imgs.every(i => i.complete && i.naturalWidth === 8); }"
    )
    # The 8 test digits as columns, one row per method, every image drawn large.
    assert grid.get_attribute("data-columns") == "8"
    assert int(grid.get_attribute("data-rows") or 0) >= 3
    widths = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=panel-attribution] img')]"
        ".map(i => i.getBoundingClientRect().width)"
    )
    assert min(widths) >= 96, widths
    heads = page.locator('[data-testid="attribution-column-label"]').all_inner_texts()
    assert all("label" in h and "pred" in h for h in heads), heads
    screenshot(page, "demo-attribution")

    # Activations: every conv layer's feature maps for 4 test digits, opened on the link.
    page.goto(f"{demo_url}/#/activations?runs=digits-cnn,digits-cnn-lr20&layer=features.0")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]').length === 16"
    )
    layers = page.locator('[data-testid="act-layer"]').evaluate_all(
        "(els) => els.map((e) => e.dataset.layer)"
    )
    assert layers == ["features.0", "features.2", "features.5"], layers
    assert page.locator('[data-testid="act-run"]').input_value() == "digits-cnn"
    assert page.locator('[data-testid="act-item"] option').count() == 4
    shots = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]')].map((c) => {"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " const r = []; for (let i = 0; i < d.length; i += 4) r.push(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);"
        " return { w: c.getBoundingClientRect().width, px: r.join(',') }; })"
    )
    assert min(s["w"] for s in shots) >= 64
    assert all(len(set(s["px"].split(","))) > 4 for s in shots[:8])  # the digit shows
    assert len({s["px"] for s in shots}) >= 12  # channels differ
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=unit-top] canvas[data-painted]').length === 96"
    )
    assert _count(page, "unit-row") == 16
    screenshot(page, "demo-activations")
    page.locator('[data-testid="act-layer"][data-layer="features.5"]').click()
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]').length === 32"
    )
