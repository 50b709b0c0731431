"""One frontend build, three entry points: the attribution panel drawn by the dashboard (real
server), by the notebook widget's ES module (`render({model, el})` in a test page, with an
anywidget-shaped model holding the payload) and by the static report (one HTML file opened
from file://) is the same picture, pixel for pixel; the report makes no request at all."""

from __future__ import annotations

import functools
import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import SCREENSHOTS, STATIC_INDEX, ServerThread, open_tab

from deepscope.views import embed

pytestmark = pytest.mark.browser

RUN = "entries"
TAG = "attribution/saliency"
LABELS = [0, 1]
IMAGES = '[data-testid="panel-attribution"] img'
# the widget draws in a shadow root on its element (#out in the widget page)
ALL = "(sel) => [...document.querySelectorAll(sel), ...(document.getElementById('out')?.shadowRoot?.querySelectorAll(sel) ?? [])]"
ALL_LOADED = f"""(n) => {{ const imgs = ({ALL})('{IMAGES}');
  return imgs.length === n && imgs.every((i) => i.complete && i.naturalWidth > 0); }}"""
N_IMAGES = 4  # 2 inputs + 2 saliency overlays

WIDGET_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light dark">
<title>widget test page</title><link rel="icon" href="data:,">
<style>body { margin: 0; }</style></head>
<body><div id="out"></div>
<script type="module">
  // anywidget's model contract: get(name) and on(event, callback); the payload travels in a
  // trait named "payload" (a JSON string here, as a Unicode trait would carry it).
  let payload = await (await fetch('./payload.json')).text();
  const listeners = {};
  const model = {
    get: (name) => (name === 'payload' ? payload : undefined),
    on: (event, cb) => { (listeners[event] ??= []).push(cb); },
    off: () => {},
  };
  const widget = await import('./widget.js');
  window.__cleanup = widget.default.render({ model, el: document.getElementById('out') });
  window.__listeners = Object.keys(listeners);
  // a Dict trait carries an object: set one and fire the change, as the kernel would
  window.__setPayload = (value) => { payload = value; listeners['change:payload'].forEach((cb) => cb()); };
</script></body></html>
"""


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A run with one attribution result (2 inputs × saliency) served by the real server, and
    the same result logged into a `ViewBuffer` for the widget and the report."""
    if not STATIC_INDEX.exists() or not (STATIC_INDEX.parent / "embed" / "report.js").exists():
        pytest.skip("the frontend is not built: run `npm run build` in frontend/")
    import torch

    import deepscope

    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(2 * 8 * 8, 3),
    )  # fmt: skip
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        pred = model(x).argmax(1)
    result = deepscope.attribute(model, x, pred, method="saliency")
    root: Path = tmp_path_factory.mktemp("entries-logdir")
    with deepscope.init(logdir=root, name=RUN) as run:
        result.log(run, TAG, step=3, labels=LABELS, predictions=pred)
    buffer = embed.ViewBuffer(RUN)
    result.log(buffer, TAG, step=3, labels=LABELS, predictions=pred)
    payload = buffer.payload("attribution")
    with ServerThread(root) as server:
        yield {"url": server.url, "payload": payload, "result": result}


@pytest.fixture(scope="module")
def widget_site(logged: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback static server for the widget test page, its payload and the built module."""
    site = tmp_path_factory.mktemp("widget-site")
    (site / "index.html").write_text(WIDGET_PAGE, encoding="utf-8")
    (site / "widget.js").write_text(embed.widget_esm(), encoding="utf-8")
    from deepscope import _jsonstrict

    (site / "payload.json").write_text(_jsonstrict.dumps(logged["payload"]), encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site))
    )
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _grid_png(page: Any, name: str) -> np.ndarray:
    from PIL import Image

    page.wait_for_function(ALL_LOADED, arg=N_IMAGES)
    grid = page.locator('[data-testid="attribution-grid"]')
    png = grid.screenshot(animations="disabled", caret="hide")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / f"entry-{name}.png").write_bytes(png)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))


def _texts(page: Any) -> dict[str, list[str]]:
    return {
        "rows": page.locator('[data-testid="attribution-row"]').all_inner_texts(),
        "columns": page.locator('[data-testid="attribution-column-label"]').all_inner_texts(),
        "cells": page.locator('[data-testid="attribution-cell"] figcaption').all_inner_texts(),
    }


@pytest.fixture(scope="module")
def dashboard_grid(logged: dict[str, Any], browser: Any) -> tuple[np.ndarray, dict[str, Any]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        open_tab(page, logged["url"], "attribution", [RUN])
        pixels = _grid_png(page, "dashboard")
        texts = _texts(page)
        assert errors == []
        return pixels, texts
    finally:
        context.close()


def test_dashboard_grid_draws_the_logged_result(
    dashboard_grid: tuple[np.ndarray, dict[str, Any]], logged: dict[str, Any]
) -> None:
    pixels, texts = dashboard_grid
    pred = logged["payload"]["view"]["items"]
    assert [r.split("\n")[0] for r in texts["rows"]] == ["saliency"]
    assert [" ".join(c.split()) for c in texts["columns"]] == [
        f"label {lab} pred {it['meta']['pred']}" for lab, it in zip(LABELS, pred, strict=True)
    ]
    # the overlay's colours are on screen: the first overlay (drawn at 112 px from 8 px, so
    # every source pixel is a 14 px block) appears in the grid screenshot
    overlay = np.asarray(logged["result"].overlay(index=0))
    colours = {tuple(int(v) for v in px) for px in pixels[..., :3].reshape(-1, 3)}
    assert {tuple(int(v) for v in overlay[y, x]) for y, x in [(0, 0), (4, 4), (7, 7)]} <= colours


def test_widget_entry_draws_the_same_pixels(
    widget_site: str,
    browser: Any,
    dashboard_grid: tuple[np.ndarray, dict[str, Any]],
    logged: dict[str, Any],
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(widget_site)
        page.wait_for_selector('[data-testid="attribution-grid"]')
        pixels = _grid_png(page, "widget")
        texts = _texts(page)
        assert page.evaluate("() => window.__listeners") == ["change:payload"]
        assert page.evaluate("() => typeof window.__cleanup") == "function"
        # the view redraws on change:payload (here an object with the first input only)
        one = dict(logged["payload"])
        one["view"] = {**one["view"], "items": one["view"]["items"][:1]}
        page.evaluate("(p) => window.__setPayload(p)", one)
        grid = page.locator('[data-testid="attribution-grid"]')
        page.wait_for_function(
            f"() => ({ALL})('[data-testid=attribution-grid]')[0]?.dataset.columns === '1'"
        )
        assert grid.get_attribute("data-rows") == "1"
        page.evaluate("() => window.__cleanup()")
        assert page.locator('[data-testid="attribution-grid"]').count() == 0
        assert errors == []
    finally:
        context.close()
    want, want_texts = dashboard_grid
    assert texts == want_texts
    assert pixels.shape == want.shape
    assert np.array_equal(pixels, want), f"{int((pixels != want).any(-1).sum())} pixels differ"


def test_report_entry_draws_the_same_pixels_offline_with_no_requests(
    logged: dict[str, Any],
    browser: Any,
    tmp_path: Path,
    dashboard_grid: tuple[np.ndarray, dict[str, Any]],
) -> None:
    report = tmp_path / "report.html"
    report.write_text(embed.report_html(logged["payload"]), encoding="utf-8")
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    try:
        page = context.new_page()
        requests: list[str] = []
        errors: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        page.wait_for_selector('[data-testid="attribution-grid"]')
        pixels = _grid_png(page, "report")
        texts = _texts(page)
        assert errors == []
    finally:
        context.close()
    # the only request is the file itself; images are data: URLs, scripts and styles inline
    assert [u for u in requests if not u.startswith("data:")] == [report.as_uri()]
    want, want_texts = dashboard_grid
    assert texts == want_texts
    assert pixels.shape == want.shape
    assert np.array_equal(pixels, want), f"{int((pixels != want).any(-1).sum())} pixels differ"


def test_report_payload_cannot_close_its_script_element(
    logged: dict[str, Any], browser: Any, tmp_path: Path
) -> None:
    """A label that is markup stays text: `</script>` in the payload does not end the data
    element, and nothing in it runs."""
    hostile = "</script><script>window.__x=1</script>"
    src = logged["payload"]
    html = embed.report_html({**src, "view": {**src["view"], "run": hostile}})
    assert hostile not in html
    report = tmp_path / "hostile.html"
    report.write_text(html, encoding="utf-8")
    context = browser.new_context(offline=True)
    try:
        page = context.new_page()
        page.goto(report.as_uri())
        card = page.locator('[data-testid="attribution-card"]')
        card.wait_for()
        assert card.get_attribute("data-run") == hostile
        assert page.evaluate("() => window.__x") is None
    finally:
        context.close()
