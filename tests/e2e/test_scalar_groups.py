"""Scalars panel in Chromium with `run.watch` tags beside the user's own: sections by tag
prefix (the user's first, watch's collapsed), several tags overlaid on one chart, a y range
that leaves out a diverging run's outliers by default, and short tick labels for huge
values. The store and server are this module's own."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_support import STATIC_INDEX, ServerThread, canvas_rgba, count_color, css_rgb, open_tab
from e2e_support import screenshot as save_screenshot

pytestmark = pytest.mark.browser

STEPS = 60
CHART = '[data-testid="scalar-chart"][data-tag="{tag}"]'
DIVERGED = {57: 1e6, 58: 1e12, 59: 5e25}
USER_SECTIONS = ["", "scale", "train", "val"]
WATCH_SECTIONS = ["grad_norm", "update_ratio", "weight_norm", "act"]


def _loss(step: int) -> float:
    return 2.0 / (1.0 + step / 10.0) + 0.1


@pytest.fixture(scope="module")
def groups_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch

    import deepscope

    root: Path = tmp_path_factory.mktemp("groups-logdir")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with deepscope.init(logdir=root, name="good") as run:
        run.watch(model, every=1)
        for step in range(STEPS):
            if step < 4:  # a few watched iterations: act/, grad_norm/, weight_norm/, ...
                loss = model(torch.randn(8, 4)).pow(2).mean()
                opt.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
            run.log(
                {
                    "train/loss": _loss(step),
                    "val/loss": _loss(step) + 0.2,
                    "lr": 0.1,
                    "scale/huge": step * 1e24,
                },
                step=step,
            )
    with deepscope.init(logdir=root, name="diverged") as run:
        for step in range(STEPS):
            run.log({"train/loss": DIVERGED.get(step, _loss(step) * 1.1)}, step=step)
    with ServerThread(root) as server:
        yield server.url


def _wait_points(page: Any, tag: str, n: int) -> None:
    page.wait_for_function(
        """([sel, n]) => { const el = document.querySelector(sel);
             return el !== null && Number(el.dataset.points) === n; }""",
        arg=[CHART.format(tag=tag), n],
    )


def _ink_left(page: Any, tag: str) -> int:
    """Leftmost column of label ink in the y-axis strip of `tag`'s chart (0: clipped)."""
    sel = CHART.format(tag=tag)
    plot_left = page.evaluate(f"document.querySelector('{sel} .u-over').offsetLeft")
    strip = canvas_rgba(page, sel + " canvas").astype(int)[:, :plot_left]
    ink = (strip[..., 3] > 100) & (strip[..., :3].min(axis=-1) < 200)
    cols = ink.any(axis=0).nonzero()[0]
    assert cols.size > 0, f"no y-axis labels drawn for {tag}"
    return int(cols.min())


def _sections(page: Any) -> list[tuple[str, str]]:
    got = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=scalar-section]')]
             .map((s) => [s.dataset.prefix, s.dataset.collapsed])"""
    )
    return [(p, c) for p, c in got]


def test_sections_put_the_users_tags_first_and_watch_groups_collapsed(
    page: Any, groups_url: str, page_log: Any
) -> None:
    open_tab(page, groups_url, "scalars", ["good"])
    _wait_points(page, "train/loss", STEPS)
    sections = _sections(page)
    assert sections == [(p, "false") for p in USER_SECTIONS] + [(p, "true") for p in WATCH_SECTIONS]
    tags = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=scalar-chart]')].map(c => c.dataset.tag)"
    )
    assert tags == ["lr", "scale/huge", "train/loss", "val/loss"]  # watch's charts not drawn
    save_screenshot(page, "scalars-sections")

    act = page.locator('[data-testid="scalar-section"][data-prefix="act"]')
    act.locator('[data-testid="section-toggle"]').click()
    assert act.get_attribute("data-collapsed") == "false"
    charts = act.locator('[data-testid="scalar-chart"]')
    charts.first.wait_for()
    assert all(
        t.startswith("act/") for t in charts.evaluate_all("(cs) => cs.map(c => c.dataset.tag)")
    )
    assert charts.count() >= 6
    # The user's sections are still open and first.
    assert _sections(page)[:4] == [(p, "false") for p in USER_SECTIONS]

    train = page.locator('[data-testid="scalar-section"][data-prefix="train"]')
    train.locator('[data-testid="section-toggle"]').click()
    assert train.get_attribute("data-collapsed") == "true"
    assert train.locator('[data-testid="scalar-chart"]').count() == 0
    assert page_log.errors == []


def test_picked_tags_are_overlaid_on_one_chart_with_a_legend(
    page: Any, groups_url: str, page_log: Any
) -> None:
    open_tab(page, groups_url, "scalars", ["good"])
    _wait_points(page, "train/loss", STEPS)
    assert page.locator('[data-testid="combine-apply"]').is_disabled()
    page.locator(CHART.format(tag="train/loss") + ' [data-testid="combine-pick"]').check()
    page.locator(CHART.format(tag="val/loss") + ' [data-testid="combine-pick"]').check()
    page.click('[data-testid="combine-apply"]')
    tag = "train/loss + val/loss"
    _wait_points(page, tag, 2 * STEPS)
    chart = CHART.format(tag=tag)
    assert page.get_attribute(chart, "data-combined") == "true"
    pairs = page.evaluate(
        """(sel) => [...document.querySelectorAll(sel + ' .u-legend .u-series')].slice(1)
             .map((r) => [r.querySelector('.u-label').textContent,
                          getComputedStyle(r.querySelector('.u-marker')).borderColor])""",
        chart,
    )
    assert [p[0] for p in pairs] == ["train/loss", "val/loss"]
    colors = [css_rgb(p[1]) for p in pairs]
    assert colors[0] != colors[1]
    pixels = canvas_rgba(page, chart + " canvas")
    for rgb in colors:
        assert count_color(pixels, rgb) > 50, f"no line pixels of colour {rgb}"
    # The combined chart comes first; the two source charts stay where they were.
    first = page.locator('[data-testid="scalar-chart"]').first.get_attribute("data-tag")
    assert first == tag
    assert page.locator(CHART.format(tag="train/loss")).count() == 1
    save_screenshot(page, "scalars-combined")
    assert page_log.errors == []


def test_y_range_leaves_out_a_diverging_run_unless_asked(
    page: Any, groups_url: str, page_log: Any
) -> None:
    open_tab(page, groups_url, "scalars", ["good", "diverged"])
    _wait_points(page, "train/loss", 2 * STEPS)
    page.wait_for_timeout(100)
    scale = page.evaluate("window.__deepscope.scale('train/loss')")
    lo, hi = min(_loss(s) for s in range(STEPS)), 1.1 * _loss(0)
    # Every healthy value is in view and the axis is not stretched towards 1e6..5e25.
    assert scale["min"] <= lo and scale["max"] >= hi, scale
    assert scale["max"] < 2 * hi and scale["min"] > -hi, scale
    labels = json.loads(page.get_attribute(CHART.format(tag="train/loss"), "data-y-labels"))
    assert all(len(s) <= 4 for s in labels if s), labels
    assert _ink_left(page, "train/loss") >= 1, "y labels clipped at the canvas edge"
    save_screenshot(page, "scalars-outliers")

    page.uncheck('[data-testid="ignore-outliers"]')
    page.wait_for_function(
        "() => (window.__deepscope.scale('train/loss')?.max ?? 0) >= 5e25", polling=100
    )
    labels = json.loads(page.get_attribute(CHART.format(tag="train/loss"), "data-y-labels"))
    labels = [s for s in labels if s]
    assert labels and all(re.fullmatch(r"0|\d(\.\d)?e\d\d", s) for s in labels), labels
    assert page_log.errors == []


def test_huge_values_get_short_exponent_labels(page: Any, groups_url: str) -> None:
    open_tab(page, groups_url, "scalars", ["good"])
    _wait_points(page, "scale/huge", STEPS)
    page.wait_for_timeout(100)
    raw = page.get_attribute(CHART.format(tag="scale/huge"), "data-y-labels")
    labels = [s for s in json.loads(raw) if s]
    # e.g. ["0", "1e25", "2e25", ...], never "5.000000000000001e25"
    assert len(labels) >= 3 and len(set(labels)) == len(labels), labels
    assert all(re.fullmatch(r"0|\d(\.\d)?e\d\d", s) for s in labels), labels
