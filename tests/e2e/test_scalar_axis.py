"""Scalar charts in Chromium: y-axis labels of tiny, huge and long numbers stay readable and
inside the canvas; the chart asks for ~2 points per pixel, coalesces bursts of zoom
re-queries and drops stale answers. The store and server are this module's own (tags with
extreme values).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
from e2e_support import STATIC_INDEX, ServerThread, canvas_rgba, open_tab

pytestmark = pytest.mark.browser

STEPS = 100
CHART = '[data-testid="scalar-chart"][data-tag="{tag}"]'
# tag -> value at step s: each would clip in a fixed 60 px axis with 5-significant-digit labels.
SERIES: dict[str, Callable[[int], float]] = {
    "tiny": lambda s: 1e-7 * (1.0 + s / 40.0),
    "big": lambda s: 123456.789 + 0.37 * s,
    "huge": lambda s: 1.5e9 + 3.3e7 * s,
    "neg": lambda s: -12345.6 - 0.013 * s,
    "small": lambda s: 0.000123 + 1e-6 * s,
}


@pytest.fixture(scope="module")
def axis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import deepscope

    root: Path = tmp_path_factory.mktemp("axis-logdir")
    with deepscope.init(logdir=root, name="axis") as run:
        for step in range(STEPS):
            run.log({tag: f(step) for tag, f in SERIES.items()}, step=step)
    with ServerThread(root) as server:
        yield server.url


def _wait_points(page: Any, tag: str, n: int) -> None:
    page.wait_for_function(
        """([sel, n]) => { const el = document.querySelector(sel);
             return el !== null && Number(el.dataset.points) === n; }""",
        arg=[CHART.format(tag=tag), n],
    )


def _labels(page: Any, tag: str) -> list[str]:
    raw = page.get_attribute(CHART.format(tag=tag), "data-y-labels")
    assert raw is not None
    return [s for s in json.loads(raw) if s]


def _axis_ink(page: Any, tag: str) -> tuple[int, int, int]:
    """(leftmost ink column, rightmost ink column, plot left) of the y-axis strip, in px."""
    sel = CHART.format(tag=tag)
    plot_left = page.evaluate(f"document.querySelector('{sel} .u-over').offsetLeft")
    rgba = canvas_rgba(page, sel + " canvas").astype(int)
    strip = rgba[:, :plot_left]
    # Label glyphs: opaque pixels that are not the white-ish background.
    ink = (strip[..., 3] > 100) & (strip[..., :3].min(axis=-1) < 200)
    cols = np.flatnonzero(ink.any(axis=0))
    assert cols.size > 0, f"no y-axis labels drawn for {tag}"
    return int(cols.min()), int(cols.max()), int(plot_left)


def test_y_axis_labels_are_compact_and_inside_the_canvas(
    page: Any, axis_server: str, page_log: Any
) -> None:
    open_tab(page, axis_server, "scalars", ["axis"])
    for tag in SERIES:
        _wait_points(page, tag, STEPS)
    page.wait_for_timeout(100)
    for tag in SERIES:
        # The drawn label ink starts right of the canvas edge (not clipped) and ends left of
        # the plot area.
        left, right, plot_left = _axis_ink(page, tag)
        assert left >= 1, f"{tag}: y labels clipped at the canvas edge"
        assert right < plot_left
    labels = {tag: _labels(page, tag) for tag in SERIES}

    # Exponent form for tiny and huge magnitudes, fixed point in between; short either way.
    assert all(re.fullmatch(r"\d(\.\d+)?e-7", s) for s in labels["tiny"]), labels["tiny"]
    assert all(re.fullmatch(r"\d(\.\d+)?e9", s) for s in labels["huge"]), labels["huge"]
    assert all(re.fullmatch(r"-123\d\d(\.\d+)?", s) for s in labels["neg"]), labels["neg"]
    assert all(re.fullmatch(r"123\d\d\d", s) for s in labels["big"]), labels["big"]
    for tag, got in labels.items():
        assert len(got) >= 2 and len(set(got)) == len(got), (tag, got)  # neighbours differ
        assert max(map(len, got)) <= 8, (tag, got)
        # The labels name the ticks: each parses to a value within the data's range.
        lo, hi = sorted((SERIES[tag](0), SERIES[tag](STEPS - 1)))
        pad = (hi - lo) * 0.5
        assert all(lo - pad <= float(s) <= hi + pad for s in got), (tag, got)

    for tag in SERIES:
        sel = CHART.format(tag=tag)
        # The axis is as wide as the widest label (measured in the axis font) plus tick + gap.
        widest = page.evaluate(
            """(labels) => { const c = document.createElement('canvas').getContext('2d');
                 c.font = '12px system-ui, -apple-system, "Segoe UI", Roboto, ' +
                   '"Helvetica Neue", Arial, "Noto Sans", sans-serif';  // uPlot's axis font
                 return Math.max(...labels.map((s) => c.measureText(s).width)); }""",
            labels[tag],
        )
        plot_left = page.evaluate(f"document.querySelector('{sel} .u-over').offsetLeft")
        assert plot_left >= widest + 15, (tag, plot_left, widest)
        assert plot_left <= widest + 40, (tag, plot_left, widest)  # not wastefully wide
        assert page.locator(sel + " canvas").count() == 1
    assert page_log.errors == []


def _scalar_requests(page: Any, tag: str) -> list[dict[str, list[str]]]:
    out: list[dict[str, list[str]]] = []

    def on_request(req: Any) -> None:
        parts = urlsplit(req.url)
        if parts.path.endswith("/api/scalars"):
            q = parse_qs(parts.query)
            if q.get("tag") == [tag]:
                out.append(q)

    page.on("request", on_request)
    return out


def test_requests_ask_two_points_per_pixel_and_coalesce_zooms(
    page: Any, axis_server: str, page_log: Any
) -> None:
    held: list[Any] = []

    def hold_first_zoom(route: Any) -> None:
        q = parse_qs(urlsplit(route.request.url).query)
        if q.get("startStep") == ["10"] and not held:
            held.append(route)  # still in flight while the next zooms come
        else:
            route.continue_()

    seen = _scalar_requests(page, "big")
    page.route("**/api/scalars?*", hold_first_zoom)
    open_tab(page, axis_server, "scalars", ["axis"])
    _wait_points(page, "big", STEPS)
    width = page.evaluate(f"document.querySelector('{CHART.format(tag='big')} .plot').clientWidth")
    assert seen, "no /api/scalars request for the chart"
    for q in seen:
        assert abs(int(q["maxPoints"][0]) - 2 * width) <= 16, (q, width)
        assert "startStep" not in q

    # A zoom re-queries at once; two more while its answer is outstanding are coalesced into
    # one re-query of the last range (the middle one is never asked), same point budget.
    before = len(seen)
    page.evaluate("window.__deepscope.zoom('big', 10, 90).catch(() => {})")
    page.wait_for_function("() => true")  # let the route handler run
    page.wait_for_timeout(100)
    assert len(held) == 1
    drawn = page.evaluate(
        """async () => {
          const z = window.__deepscope.zoom;
          const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
          z('big', 20, 80).catch(() => {});
          await frame();
          await frame();
          return await z('big', 30, 49);
        }"""
    )
    assert drawn == 20
    got = [(q["startStep"][0], q["endStep"][0]) for q in seen[before:]]
    assert got == [("10", "90"), ("30", "49")], got
    assert all(abs(int(q["maxPoints"][0]) - 2 * width) <= 16 for q in seen[before:])
    assert page_log.errors == []


def test_a_late_answer_to_an_older_zoom_never_lands(
    page: Any, axis_server: str, page_log: Any
) -> None:
    held: list[Any] = []

    def hold_first_zoom(route: Any) -> None:
        q = parse_qs(urlsplit(route.request.url).query)
        if q.get("startStep") == ["10"] and not held:
            held.append(route)  # answered only after the newer zoom is drawn
        else:
            route.continue_()

    page.route("**/api/scalars?*", hold_first_zoom)
    open_tab(page, axis_server, "scalars", ["axis"])
    _wait_points(page, "big", STEPS)
    page.evaluate("window.__deepscope.zoom('big', 10, 89).catch(() => {})")
    page.wait_for_function("() => true")  # let the route handler run
    page.wait_for_timeout(100)
    assert len(held) == 1
    assert page.evaluate("window.__deepscope.zoom('big', 50, 59)") == 10
    try:
        held[0].continue_()
    except Exception:  # noqa: BLE001 - the page may have cancelled it already
        pass
    page.wait_for_timeout(500)
    assert page.get_attribute(CHART.format(tag="big"), "data-points") == "10"
    reset = page.locator(CHART.format(tag="big") + " button.link")
    assert (reset.text_content() or "").endswith("(steps 50–59)")
    assert page_log.errors == []
