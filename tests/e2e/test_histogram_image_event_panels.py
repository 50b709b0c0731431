"""Histograms, Images and Events panels against a real server and store, in headless Chromium."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from e2e_support import (
    HIST_NAN_COUNT,
    HIST_STEPS,
    IMAGE_COLORS,
    canvas_rgba,
    count_color,
    open_tab,
    screenshot,
)

pytestmark = pytest.mark.browser

HIST = '[data-testid="histogram-chart"][data-tag="weights/layer1"]'


def painted(rgba: np.ndarray) -> int:
    return int((rgba[..., 3] > 0).sum())


def test_histogram_views_draw_every_finite_step(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "histograms", ["alpha"])
    chart = page.locator(HIST)
    chart.wait_for()
    page.wait_for_function(
        "(sel) => document.querySelector(sel + ' canvas').dataset.steps === '10'", arg=HIST
    )
    counts = chart.locator('[data-testid="nonfinite-counts"]').text_content() or ""
    assert f"NaN {HIST_NAN_COUNT}" in counts and "+Inf 0" in counts
    assert "1 step(s) all non-finite" in counts
    run_rgb = (0x3B, 0x82, 0xF6)  # alpha is the first run: palette colour 0
    offset = canvas_rgba(page, HIST + " canvas")
    assert count_color(offset, run_rgb, tol=60) > 200
    # Ridgelines are stacked: the run colour appears over most of the canvas height.
    rows = np.any(np.all(np.abs(offset[..., :3].astype(int) - run_rgb) <= 60, axis=-1), axis=1)
    assert rows.sum() > offset.shape[0] * 0.5
    _assert_short_labels_inside(page, offset.shape[1])
    screenshot(page, "histograms")

    page.select_option('[data-testid="histogram-mode"]', "distribution")
    page.wait_for_function(
        "(sel) => document.querySelector(sel).dataset.mode === 'distribution'", arg=HIST
    )
    page.wait_for_timeout(100)
    dist = canvas_rgba(page, HIST + " canvas")
    assert painted(dist) > 1000
    assert (dist != offset).any()
    # The all-NaN step leaves a gap in the bands: some column between the steps is empty.
    w = dist.shape[1]
    near = np.all(np.abs(dist[..., :3].astype(int) - run_rgb) <= 90, axis=-1)
    cols: np.ndarray = np.any((dist[..., 3] > 0) & near, axis=0)
    inner = cols[int(w * 0.2) : int(w * 0.95)]
    assert inner.sum() > 0 and not inner.all(), "the all-NaN step should leave an empty gap"
    assert HIST_STEPS == 10
    _assert_short_labels_inside(page, w)
    screenshot(page, "histograms-distribution")


def _assert_short_labels_inside(page: Any, canvas_px: int) -> None:
    """The x labels are round, short numbers drawn wholly inside the canvas."""
    raw = page.get_attribute(HIST + " canvas", "data-x-labels")
    labels = json.loads(raw or "[]")
    css_width = page.evaluate(f"document.querySelector('{HIST} canvas').clientWidth")
    assert len(labels) >= 3, labels
    for text, left, right in labels:
        assert len(text) <= 5, labels  # e.g. "-2", "2.5", "0.25": never "-3.4217"
        assert 0 <= left and right <= css_width, labels
    assert canvas_px >= css_width


def image_rgb(page: Any, card: str) -> tuple[int, int, int]:
    got = page.evaluate(
        """(sel) => { const img = document.querySelector(sel + ' img');
                 const c = document.createElement('canvas'); c.width = 4; c.height = 4;
                 const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0, 4, 4);
                 return Array.from(ctx.getImageData(1, 1, 1, 1).data.slice(0, 3)); }""",
        card,
    )
    return (int(got[0]), int(got[1]), int(got[2]))


def test_images_panel_steps_through_logged_images(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "images", ["alpha"])
    card = '[data-testid="image-card"][data-run="alpha"][data-tag="samples"]'
    page.wait_for_function(
        "(sel) => { const i = document.querySelector(sel + ' img'); return i && i.complete && i.naturalWidth === 16; }",
        arg=card,
    )
    assert image_rgb(page, card) == IMAGE_COLORS[-1]  # the latest step by default
    assert "step 2" in (page.locator(card + " .card-head").text_content() or "")
    screenshot(page, "images")
    slider = page.locator(card + ' [data-testid="image-step"]')
    slider.fill("0")
    page.wait_for_function(
        "(sel) => document.querySelector(sel + ' .card-head').textContent.includes('step 0')",
        arg=card,
    )
    page.wait_for_function(
        "(sel) => { const i = document.querySelector(sel + ' img'); return i.complete && i.naturalWidth === 16; }",
        arg=card,
    )
    assert image_rgb(page, card) == IMAGE_COLORS[0]
    src = page.locator(card + " img").get_attribute("src") or ""
    assert src.startswith("api/blob?") and "run=alpha" in src


def test_events_panel_lists_events_as_text(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "events", ["alpha"])
    rows = page.locator('[data-testid="event-row"]')
    rows.first.wait_for()
    assert rows.count() == 2
    texts = [" | ".join(rows.nth(i).locator("td").all_text_contents()) for i in range(2)]
    joined = "\n".join(texts)
    assert "NaN in layer1 output" in joined and "gradient norm 1e6" in joined
    nan_row = page.locator('[data-testid="event-row"][data-severity="error"]')
    cells = nan_row.locator("td").all_text_contents()
    assert (
        cells[0] == "alpha"
        and cells[1] == "50"
        and cells[4:] == ["nan", "layer1", "NaN in layer1 output"]
    )
    text_card = page.locator('[data-testid="text-card"][data-tag="notes"]')
    assert "plain note: lr warmup done" in (text_card.text_content() or "")
    screenshot(page, "events")
