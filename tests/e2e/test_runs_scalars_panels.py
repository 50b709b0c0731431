"""Runs and Scalars panels against a real server and store, in headless Chromium."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from e2e_support import (
    LOSS_STEPS,
    canvas_rgba,
    count_color,
    count_red,
    css_rgb,
    open_tab,
    screenshot,
)

pytestmark = pytest.mark.browser

CHART = '[data-testid="scalar-chart"][data-tag="{tag}"]'


def wait_points(page: Any, tag: str, expected: int, timeout: float = 10_000) -> None:
    page.wait_for_function(
        """([sel, n]) => { const el = document.querySelector(sel);
             return el !== null && Number(el.dataset.points) === n; }""",
        arg=[CHART.format(tag=tag), expected],
        timeout=timeout,
    )


def legend_colors(page: Any, tag: str) -> dict[str, tuple[int, int, int]]:
    """Series label -> stroke colour, read from uPlot's legend markers."""
    pairs = page.evaluate(
        """(sel) => Array.from(document.querySelectorAll(sel + ' .u-legend .u-series'))
             .slice(1).map((row) => [row.querySelector('.u-label').textContent,
                                     getComputedStyle(row.querySelector('.u-marker')).borderColor])""",
        CHART.format(tag=tag),
    )
    return {label: css_rgb(color) for label, color in pairs}


def test_runs_panel_lists_runs_with_status_and_config_as_text(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "runs")
    alpha = page.locator('[data-testid="run-row"][data-run="alpha"]')
    alpha.wait_for()
    assert alpha.get_attribute("data-status") == "finished"
    config = alpha.locator('[data-testid="run-config"]')
    assert config.locator("th").all_text_contents() == ["lr", "optimizer", "layers"]
    assert config.locator("td").all_text_contents() == ["0.001", "adam", "[4,8,2]"]
    assert page.locator('[data-testid="run-row"][data-run="beta"]').count() == 1
    screenshot(page, "runs")

    page.fill('[data-testid="run-filter"]', "bet")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=run-row]').length === 1")
    assert page.locator('[data-testid="run-row"]').get_attribute("data-run") == "beta"


def test_run_checkbox_drives_the_scalar_overlay(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "runs", ["alpha", "beta"])
    toggle = page.locator('[data-testid="run-row"][data-run="beta"] [data-testid="run-toggle"]')
    assert toggle.is_checked()
    toggle.uncheck()
    assert "runs=alpha" in page.url and "beta" not in page.url.split("#", 1)[1]
    page.click('[data-testid="tab-scalars"]')
    wait_points(page, "loss", LOSS_STEPS)
    assert list(legend_colors(page, "loss")) == ["alpha"]


def test_scalar_chart_overlays_runs_in_distinct_colours(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "scalars", ["alpha", "beta"])
    wait_points(page, "loss", 2 * LOSS_STEPS)
    colors = legend_colors(page, "loss")
    assert list(colors) == ["alpha", "beta"]
    assert colors["alpha"] != colors["beta"]
    pixels = canvas_rgba(page, CHART.format(tag="loss") + " canvas")
    for run, rgb in colors.items():
        assert count_color(pixels, rgb) > 100, f"no line pixels of {run}'s colour {rgb}"
    assert count_red(pixels) == 0, "a chart without non-finite values shows red markers"
    screenshot(page, "scalars")


def test_nonfinite_values_are_drawn_as_red_markers(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "scalars", ["alpha"])
    wait_points(page, "unstable", LOSS_STEPS)
    note = page.locator(CHART.format(tag="unstable") + ' [data-testid="nonfinite-note"]')
    text = note.text_content() or ""
    assert "1 NaN" in text and "1 +Inf" in text and "1 −Inf" in text
    pixels = canvas_rgba(page, CHART.format(tag="unstable") + " canvas")
    assert count_red(pixels) > 30
    # +Inf sits on the top edge, -Inf on the bottom edge of the plot area.
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 70) & (pixels[..., 2] < 70)
    red_rows = np.flatnonzero(np.any(red, axis=1))
    h = pixels.shape[0]
    assert red_rows.min() < h * 0.3 and red_rows.max() > h * 0.6


def test_controls_change_what_is_drawn(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "scalars", ["alpha"])
    wait_points(page, "loss", LOSS_STEPS)
    before = canvas_rgba(page, CHART.format(tag="loss") + " canvas")

    page.check('[data-testid="log-y"]')
    wait_points(page, "loss", LOSS_STEPS)
    page.wait_for_timeout(100)
    log_pixels = canvas_rgba(page, CHART.format(tag="loss") + " canvas")
    assert (log_pixels != before).any()

    page.uncheck('[data-testid="log-y"]')
    page.fill('[data-testid="smoothing"]', "0.9")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-tag=\"loss\"] .u-legend .u-series').length === 3"
    )
    labels = page.locator(CHART.format(tag="loss") + " .u-legend .u-label").all_text_contents()
    assert labels[1:] == ["alpha", "alpha (smoothed)"]

    page.select_option('[data-testid="x-axis"]', "relative")
    page.wait_for_function(
        "() => document.querySelector('[data-tag=\"loss\"] .u-legend .u-label').textContent"
        " === 'relative'"
    )
    wait_points(page, "loss", LOSS_STEPS)


def test_zoom_requeries_the_selected_step_range(page: Any, server_url: str) -> None:
    open_tab(page, server_url, "scalars", ["alpha"])
    wait_points(page, "loss", LOSS_STEPS)
    drawn = page.evaluate("window.__deepscope.zoom('loss', 20, 39)")
    assert drawn == 20
    wait_points(page, "loss", 20)
    reset = page.locator(CHART.format(tag="loss") + " button.link")
    assert (reset.text_content() or "").endswith("(steps 20–39)")

    # A real drag-select over the middle of the plot narrows further.
    over = page.locator(CHART.format(tag="loss") + " .u-over")
    box = over.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    page.wait_for_function(
        """(sel) => { const n = Number(document.querySelector(sel).dataset.points);
             return n > 0 && n < 20; }""",
        arg=CHART.format(tag="loss"),
    )
    over.dblclick()
    wait_points(page, "loss", LOSS_STEPS)
