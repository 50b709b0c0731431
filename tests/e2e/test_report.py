"""`deepscope report` on the demo's logdir: one HTML file that Chromium opens from file://
with the network cut (every non-file request is aborted and recorded: none is made), every
panel populated as in the dashboard's demo test, no external URL anywhere in the file, and
tag names, config and events that are markup drawn as text (run names are made safe by
`deepscope.init`). The Activations panel's tag selector (and its
``tag=`` deep link) picks among several logged tags."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import SCREENSHOTS, STATIC_INDEX

pytestmark = [pytest.mark.browser]

RUNS = ["digits-cnn", "digits-cnn-lr20"]
MB = 1024 * 1024


def _built() -> None:
    if not (STATIC_INDEX.parent / "embed" / "report.js").exists():
        pytest.skip("the frontend is not built: run `npm run build` in frontend/")


def _report(target: Path, out: Path, *extra: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "deepscope.cli", "report", str(target), "-o", str(out), *extra],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    _built()
    from deepscope.demo import run_demo

    root = tmp_path_factory.mktemp("report-demo")
    run_demo(root / "runs", progress=False, epochs=3)
    out = root / "report.html"
    return out, _report(root / "runs", out)


@pytest.fixture
def offline(browser: Any) -> Iterator[tuple[Any, list[str], list[str]]]:
    """A page whose every request but file: and data: is aborted (and recorded)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    attempted: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            attempted.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.set_default_timeout(20_000)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.on(
        "request",
        lambda r: None if r.url.startswith(("file:", "data:")) else attempted.append(r.url),
    )
    try:
        yield page, attempted, problems
    finally:
        context.close()


def _go(page: Any, report: Path, fragment: str) -> None:
    page.goto(f"{report.as_uri()}#/{fragment}")
    page.wait_for_selector(f'[data-testid="panel-{fragment.split("?")[0]}"]')


def _shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_demo_report_is_small_and_says_its_size_and_time(demo_report: tuple[Path, str]) -> None:
    report, stdout = demo_report
    size = report.stat().st_size
    assert size <= 5 * MB
    m = re.search(r"wrote .*report\.html \(([\d.]+) MB, 2 runs\) in ([\d.]+) s", stdout)
    assert m is not None, stdout
    assert abs(float(m.group(1)) - size / MB) < 0.01


def test_demo_report_has_no_external_url(demo_report: tuple[Path, str]) -> None:
    text = demo_report[0].read_text(encoding="utf-8")
    urls = set(re.findall(r"https?://[^\s\"'`)<>\\]+", text))
    # namespace identifiers, never fetched: XML's, and the EMF/ELK model URIs inside the
    # inlined ELK layout code (the offline test proves no request is made)
    inert_prefixes = ("http://www.w3.org/", "http://www.eclipse.org/emf/",
                      "http://www.eclipse.org/elk/ElkGraph", "http:///org/eclipse/emf/")  # fmt: skip
    assert {u for u in urls if not u.startswith(inert_prefixes)} == set()
    assert "https://" not in text


def test_demo_report_draws_every_panel_offline(demo_report: tuple[Path, str], offline: Any) -> None:
    report = demo_report[0]
    page, attempted, problems = offline
    runs = ",".join(RUNS)
    _go(page, report, f"runs?runs={runs}")
    page.wait_for_function("() => document.querySelectorAll('[data-testid=run-row]').length === 2")
    _shot(page, "report-runs")

    _go(page, report, f"scalars?runs={runs}")
    loss = '[data-testid="scalar-chart"][data-tag="train/loss"]'
    page.wait_for_function(
        f"() => Number(document.querySelector('{loss}')?.dataset.points || 0) > 50"
    )
    assert page.locator('[data-testid="scalar-chart"]').count() >= 3
    # zoomable: the chart re-asks for a step range and draws the points in it
    drawn = page.evaluate("window.__deepscope.zoom('train/loss', 5, 15)")
    assert 0 < drawn <= 2 * 11 + 2
    _shot(page, "report-scalars")

    _go(page, report, "histograms?runs=digits-cnn")
    page.locator('[data-testid="histogram-chart"]').first.wait_for()
    assert page.locator('[data-testid="histogram-chart"]').count() >= 10
    _shot(page, "report-histograms")

    _go(page, report, "images?runs=digits-cnn")
    page.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=image-card] img');"
        " return i && i.complete && i.naturalWidth === 144; }"
    )
    _shot(page, "report-images")

    _go(page, report, "graph?runs=digits-cnn")
    page.locator('[data-testid="graph-node"]').first.wait_for(timeout=30_000)
    labels = page.locator('[data-testid="graph-node"]').evaluate_all(
        "(e) => e.map((n) => n.textContent)"
    )
    assert any("features" in t for t in labels) and any("classifier" in t for t in labels)
    _shot(page, "report-graph")

    _go(page, report, "events?runs=digits-cnn-lr20")
    page.locator('[data-testid="event-row"]').first.wait_for()
    text = " ".join(page.locator('[data-testid="event-row"]').all_inner_texts())
    assert "nonfinite_activation" in text and "exploding_gradients" in text
    _shot(page, "report-events")

    _go(page, report, "attribution?runs=digits-cnn")
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('[data-testid=panel-attribution] img')];"
        " return imgs.length >= 32 && imgs.every(i => i.complete && i.naturalWidth === 8); }"
    )
    assert (
        page.locator('[data-testid="attribution-grid"]').first.get_attribute("data-columns") == "8"
    )
    _shot(page, "report-attribution")

    _go(page, report, f"activations?runs={runs}&layer=features.0")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]').length === 16"
    )
    shots = page.evaluate(
        "() => [...document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]')].map((c) => {"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const s = new Set();"
        " for (let i = 0; i < d.length; i += 4) s.add(d[i] * 65536 + d[i + 1] * 256 + d[i + 2]);"
        " return { w: c.getBoundingClientRect().width, n: s.size }; })"
    )
    assert min(s["w"] for s in shots) >= 64 and all(s["n"] > 4 for s in shots[:8])
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=unit-top] canvas[data-painted]').length === 96"
    )
    _shot(page, "report-activations")
    assert problems == []
    assert attempted == []


@pytest.fixture(scope="module")
def tricky_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scalar tags, config and an event that are markup, and two activations tags."""
    _built()
    import torch

    import deepscope

    root = tmp_path_factory.mktemp("report-tricky")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU())
    a = torch.zeros(1, 1, 8, 8)
    a[0, 0, 2:6, 2:6] = 1.0
    b = torch.zeros(1, 1, 8, 8)
    b[0, 0, :, 1] = 1.0
    hostile = {"<img src=x onerror=alert(1)>": "<script>alert(5)</script>"}
    with deepscope.init(logdir=root / "runs", name="tricky", config=hostile) as run:
        for s in range(3):
            run.log(
                {"<script>alert(2)</script>": float(s), "<img src=y onerror=alert(3)>": 1.0}, step=s
            )
        run.log_activations("acts/square", deepscope.activations(model, a, layers=["0"]), step=0)
        run.log_activations("acts/line", deepscope.activations(model, b, layers=["0"]), step=0)
        run.log_event("<b>bold</b>", "<img src=x onerror=alert(6)>", severity="warning", step=1)
    out = root / "tricky.html"
    _report(root / "runs", out)
    return out


def test_markup_in_run_and_tag_names_is_text(tricky_report: Path, offline: Any) -> None:
    page, attempted, problems = offline
    _go(page, tricky_report, "events")
    page.locator('[data-testid="event-row"]').first.wait_for()
    assert (
        "<img src=x onerror=alert(6)>"
        in page.locator('[data-testid="event-row"]').first.inner_text()
    )
    _go(page, tricky_report, "scalars")
    page.locator('[data-testid="scalar-chart"]').first.wait_for()
    tags = page.locator('[data-testid="scalar-chart"]').evaluate_all(
        "(e) => e.map((c) => c.dataset.tag)"
    )
    assert "<script>alert(2)</script>" in tags and "<img src=y onerror=alert(3)>" in tags
    page.wait_for_timeout(300)
    injected = page.evaluate(
        "() => [...document.querySelectorAll('img')].filter((i) => /\\/(x|y)$/.test(i.src)).length"
        " + document.querySelectorAll('main script, header script').length"
    )
    assert injected == 0
    _shot(page, "report-xss")
    assert problems == [] and attempted == []


def test_activations_tag_selector_and_deep_link(tricky_report: Path, offline: Any) -> None:
    page, _, problems = offline
    tiles = "[data-testid=act-tile] canvas[data-painted]"
    grab = (
        f"() => [...document.querySelectorAll('{tiles}')].map((c) => {{ const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let h = 0;"
        " for (let i = 0; i < d.length; i += 97) h = (h * 31 + d[i]) % 1000003; return h; })"
    )
    _go(page, tricky_report, "activations?tag=acts/line")
    page.wait_for_function(f"() => document.querySelectorAll('{tiles}').length === 3")
    select = page.locator('[data-testid="act-tag"]')
    assert select.input_value() == "acts/line"
    assert select.locator("option").all_inner_texts() == ["acts/square", "acts/line"]
    line = page.evaluate(grab)
    select.select_option("acts/square")
    page.wait_for_function(
        f"(old) => {{ const now = ({grab})(); return now.length === 3 && now.join() !== old.join(); }}",
        arg=line,
    )
    assert "tag=acts%2Fsquare" in page.url or "tag=acts/square" in page.url
    square = page.evaluate(grab)
    assert int((np.array(square) != np.array(line)).sum()) >= 2  # the maps follow the tag
    _shot(page, "report-activations-tags")
    assert problems == []


def test_model_report_shows_the_graph_offline(tmp_path: Path, offline: Any) -> None:
    """``deepscope report MODEL``: a model file's graph, explorable from file://."""
    _built()
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    weights = {"encoder.conv.weight": rng.standard_normal((8, 3, 3, 3), dtype=np.float32),
               "encoder.conv.bias": np.zeros(8, np.float32),
               "head.fc.weight": rng.standard_normal((10, 8), dtype=np.float32)}  # fmt: skip
    save_file(weights, str(tmp_path / "tiny.safetensors"))
    out = tmp_path / "model.html"
    said = _report(tmp_path / "tiny.safetensors", out)
    assert "model.html" in said and out.stat().st_size < 5_000_000
    page, attempted, problems = offline
    page.goto(f"{out.as_uri()}#/graph")
    page.locator('[data-testid="graph-node"]').first.wait_for(timeout=30_000)
    labels = page.locator('[data-testid="graph-node"]').evaluate_all(
        "(e) => e.map((n) => n.textContent)"
    )
    assert any("encoder" in t for t in labels) and any("head" in t for t in labels), labels
    _shot(page, "report-model-graph")
    assert attempted == [] and problems == []
