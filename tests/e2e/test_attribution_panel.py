"""The attribution panel in Chromium: every logged input of every method, as a method × input
grid of large, crisp images with the input, its label and prediction, the target, the method
and layer, and a colorbar. The store and server are this module's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import STATIC_INDEX, ServerThread, open_tab, screenshot

pytestmark = pytest.mark.browser

N_ITEMS = 8
METHODS = ("saliency", "grad_cam")
LABELS = [0, 1, 2, 0, 1, 2, 0, 1]


@pytest.fixture(scope="module")
def attribution_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, dict[str, Any]]]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch

    import deepscope

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3),
    )  # fmt: skip
    x = torch.rand(N_ITEMS, 1, 8, 8)
    with torch.no_grad():
        pred = model(x).argmax(1)
    root: Path = tmp_path_factory.mktemp("attribution-logdir")
    results = {}
    with deepscope.init(logdir=root, name="attr") as run:
        for method in METHODS:
            layer = {"layer": "0"} if method == "grad_cam" else {}
            result = deepscope.attribute(model, x, pred, method=method, **layer)
            result.log(run, f"attribution/{method}", step=7, labels=LABELS, predictions=pred)
            results[method] = result
    expected = {"pred": [int(p) for p in pred], "results": results}
    with ServerThread(root) as server:
        yield server.url, expected


PIXEL = """([sel, x, y]) => { const img = document.querySelector(sel);
  const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
  return Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3)); }"""


def test_grid_shows_every_input_of_every_method_large(
    page: Any, attribution_run: tuple[str, dict[str, Any]], page_log: Any
) -> None:
    url, expected = attribution_run
    open_tab(page, url, "attribution", ["attr"])
    grid = page.locator('[data-testid="attribution-grid"]')
    grid.wait_for()
    page.wait_for_function(
        """() => { const imgs = [...document.querySelectorAll('[data-testid=panel-attribution] img')];
             return imgs.length === 24 && imgs.every((i) => i.complete && i.naturalWidth === 8); }"""
    )
    assert grid.get_attribute("data-rows") == "2" and grid.get_attribute("data-columns") == "8"
    rows = page.locator('[data-testid="attribution-row"]').all_inner_texts()
    assert [r.split("\n")[0] for r in rows] == ["grad_cam", "saliency"]
    assert "layer 0" in rows[0]
    for method in METHODS:
        cells = page.locator(f'[data-testid="attribution-cell"][data-method="{method}"]')
        assert cells.count() == N_ITEMS
        captions = cells.locator("figcaption").all_inner_texts()
        assert captions == [f"target {p}" for p in expected["pred"]]
    heads = page.locator('[data-testid="attribution-column-label"]').all_inner_texts()
    assert [" ".join(h.split()) for h in heads] == [
        f"label {lab} pred {p}" for lab, p in zip(LABELS, expected["pred"], strict=True)
    ]
    assert page.locator('[data-testid="attribution-input"] img').count() == N_ITEMS

    # Every image is drawn at >= 96 CSS px with crisp (nearest-neighbour) pixels.
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('[data-testid=panel-attribution] img')].map((i) =>
             [i.getBoundingClientRect().width, getComputedStyle(i).imageRendering])"""
    )
    assert len(sizes) == 24
    assert all(w >= 96 and r == "pixelated" for w, r in sizes), sizes

    # The overlay pixels are the logged map's colours (grad_cam row, item 3, a few pixels).
    result = expected["results"]["grad_cam"]
    want = np.asarray(result.overlay(index=3))
    sel = '[data-testid="attribution-cell"][data-method="grad_cam"]:nth-of-type(1) img'
    nth = page.locator('[data-testid="attribution-cell"][data-method="grad_cam"] img').nth(3)
    nth.evaluate("(el) => el.setAttribute('data-probe', '1')")
    sel = 'img[data-probe="1"]'
    for x, y in [(0, 0), (3, 4), (7, 7)]:
        assert page.evaluate(PIXEL, [sel, x, y]) == [int(v) for v in want[y, x]]
    # ... and differ from the input's (an overlay, not the input again).
    inp = page.locator('[data-testid="attribution-input"] img').nth(3)
    inp.evaluate("(el) => el.setAttribute('data-probe', '2')")
    got_in = [page.evaluate(PIXEL, ['img[data-probe="2"]', x, 4]) for x in range(8)]
    got_ov = [page.evaluate(PIXEL, [sel, x, 4]) for x in range(8)]
    assert got_in != got_ov
    assert all(c[0] == c[1] == c[2] for c in got_in)  # the grey input digit

    bar = page.locator('[data-testid="attribution-colorbar"]')
    assert "low" in bar.inner_text() and "high" in bar.inner_text()
    ramp = page.evaluate(
        "() => getComputedStyle(document.querySelector('.colorbar-ramp')).backgroundImage"
    )
    assert ramp.startswith("linear-gradient") and "rgb(0, 0, 128)" in ramp  # jet's dark blue
    screenshot(page, "attribution")
    assert page_log.errors == []
