"""The Activations panel in Chromium: a logged conv layer's channels as a grid of large,
crisp canvas tiles coloured with viridis from the exact logged values, a click opening one
channel at full size with its value under the pointer, the layer list, the input selector
and the deep link. The store and server are this module's own."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import CANVAS_PIXELS, STATIC_INDEX, ServerThread, screenshot

pytestmark = pytest.mark.browser

CHANNELS = 4


@pytest.fixture(scope="module")
def acts_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch

    import deepscope

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, CHANNELS, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(CHANNELS * 8 * 8, 10),
    )  # fmt: skip
    x = torch.rand(2, 1, 8, 8)
    acts = deepscope.activations(model, x, ["0", "3"])
    data = [torch.rand(6, 1, 8, 8) for _ in range(3)]
    stats = deepscope.unit_stats(model, data, ["0"], top_k=3, progress=False)
    root: Path = tmp_path_factory.mktemp("activations-logdir")
    with deepscope.init(logdir=root, name="acts") as run:
        run.log_activations("acts", acts, step=1)
        run.log_activations("acts", acts, step=5)
        run.log_unit_stats("units", stats, step=5)
    with deepscope.init(logdir=root, name="acts16") as run:
        run.log_activations("acts", acts, step=1, dtype="float16")
    with ServerThread(root) as server:
        yield server.url, (acts, stats)


def _canvas(page: Any, selector: str, index: int) -> np.ndarray:
    got = page.evaluate(CANVAS_PIXELS, [selector, index])
    rgba = np.frombuffer(base64.b64decode(got["b64"]), dtype=np.uint8)
    return rgba.reshape(got["height"], got["width"], 4)[..., :3]


def _shot(locator: Any) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB"))


def _viridis(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    from deepscope.render.colormap import lut

    k = np.clip(np.round((values - lo) / (hi - lo) * 255), 0, 255).astype(int)
    return lut("viridis")[k].astype(int)


def _open(page: Any, url: str, fragment: str) -> None:
    page.goto(f"{url}/#/activations{fragment}")
    page.wait_for_selector('[data-testid="panel-activations"]')


def test_tiles_are_the_logged_channels_large_crisp_and_distinct(
    page: Any, acts_run: tuple[str, Any], page_log: Any
) -> None:
    url, (acts, _) = acts_run
    _open(page, url, "?run=acts&layer=0")
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]').length === {CHANNELS}"
    )
    want = acts["0"][0].numpy()
    lo, hi = float(want.min()), float(want.max())
    shots = []
    for k in range(CHANNELS):
        tile = page.locator('[data-testid="act-tile"] canvas').nth(k)
        box = tile.bounding_box()
        assert box["width"] >= 64 and box["height"] >= 64, box  # an 8×8 map drawn large
        pixels = _canvas(page, '[data-testid="act-tile"] canvas', k)
        assert pixels.shape == (8, 8, 3)
        # each canvas pixel is the exact logged value through viridis (TS LUT within 5/255)
        assert np.abs(pixels.astype(int) - _viridis(want[k], lo, hi)).max() <= 5
        shot = _shot(tile)
        assert shot.reshape(-1, 3).std(0).max() > 10, f"tile {k} is blank on screen"
        # crisp: upscaled blocks hold one colour (no smoothing between map pixels)
        block = shot[2 : box["height"] // 8 - 2, 2 : box["width"] // 8 - 2]
        assert np.ptp(block.reshape(-1, 3), axis=0).max() <= 2
        shots.append(shot)
    for a in range(CHANNELS):
        for b in range(a + 1, CHANNELS):
            assert np.abs(shots[a].astype(int) - shots[b].astype(int)).mean() > 5, (a, b)
    ramp = page.evaluate(
        "() => getComputedStyle(document.querySelector('.act-ramp')).backgroundImage"
    )
    assert ramp.startswith("linear-gradient") and "rgb(68, 1, 84)" in ramp  # viridis' first
    layers = page.locator('[data-testid="act-layer"]').evaluate_all(
        "(els) => els.map((e) => e.dataset.layer)"
    )
    assert layers == ["0", "3"]
    assert page.locator('[data-testid="act-step"]').input_value() == "5"
    screenshot(page, "activations")
    assert page_log.errors == []


def test_click_opens_the_channel_full_size_with_values_on_hover(
    page: Any, acts_run: tuple[str, Any], page_log: Any
) -> None:
    url, (acts, _) = acts_run
    _open(page, url, "?run=acts&layer=0")
    page.locator('[data-testid="act-tile"]').nth(2).click()
    detail = page.locator('[data-testid="act-detail"]')
    detail.locator("canvas[data-painted]").wait_for()
    assert detail.get_attribute("data-channel") == "2"
    canvas = page.locator('[data-testid="act-detail-canvas"]')
    box = canvas.bounding_box()
    assert box["width"] >= 300
    want = acts["0"][0, 2].numpy()
    r, c = 3, 5
    canvas.hover(  # positioned when the canvas is stable, scrolled into view
        position={"x": (c + 0.5) * box["width"] / 8, "y": (r + 0.5) * box["height"] / 8}
    )
    page.wait_for_function(  # the hover label updates on the next render
        "() => document.querySelector('[data-testid=act-value]').textContent.includes(' = ')"
    )
    text = page.locator('[data-testid="act-value"]').inner_text()
    assert text.startswith(f"({r}, {c}) = "), text
    assert float(text.split("= ")[1]) == pytest.approx(float(want[r, c]), rel=5e-3, abs=1e-3)
    assert np.array_equal(_canvas(page, '[data-testid="act-detail-canvas"]', 0),
                          _canvas(page, '[data-testid="act-tile"] canvas', 2))  # fmt: skip
    assert page_log.errors == []


def test_layer_input_and_deep_link(page: Any, acts_run: tuple[str, Any], page_log: Any) -> None:
    url, (acts, _) = acts_run
    _open(page, url, "?run=acts&layer=0")
    page.locator('[data-testid="act-tile"] canvas[data-painted]').first.wait_for()
    first = _canvas(page, '[data-testid="act-tile"] canvas', 0)
    page.locator('[data-testid="act-item"]').select_option("1")
    page.wait_for_selector(
        '[data-testid="act-item-maps"][data-index="1"] [data-testid="act-tile"] canvas[data-painted]'
    )
    assert not np.array_equal(first, _canvas(page, '[data-testid="act-tile"] canvas', 0))
    page.locator('[data-testid="act-layer"][data-layer="3"]').click()
    strip = page.locator(
        '[data-testid="act-item-maps"][data-layer="3"] [data-testid="act-tile"] canvas[data-painted]'
    )
    strip.wait_for()
    assert _canvas(page, '[data-testid="act-tile"] canvas', 0).shape == (1, 10, 3)
    assert "layer=3" in page.evaluate("() => location.hash")
    # the link opens the same layer
    _open(page, url, "?run=acts&layer=3")
    page.wait_for_selector('[data-testid="act-item-maps"][data-layer="3"]')
    assert page_log.errors == []


def test_unit_table_sorts_and_shows_top_k_crops(
    page: Any, acts_run: tuple[str, Any], page_log: Any
) -> None:
    url, (_, stats) = acts_run
    _open(page, url, "?run=acts&layer=0")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=unit-top] canvas[data-painted]').length === 12"
    )
    table = stats["0"]
    rows = page.locator('[data-testid="unit-row"]')
    by_max = [int(u) for u in np.argsort(-table.max.numpy(), kind="stable")]
    assert [int(r.get_attribute("data-unit")) for r in rows.all()] == by_max
    page.locator('[data-testid="unit-sort-unit"]').click()
    assert [int(r.get_attribute("data-unit")) for r in rows.all()] == [0, 1, 2, 3]
    tops = rows.nth(1).locator('[data-testid="unit-top"] figcaption').all_inner_texts()
    assert [int(t.split(":")[0].lstrip("#")) for t in tops] == table.top_indices[1].tolist()
    h, w = table.receptive_field["size"]
    for j in range(12):
        crop = _canvas(page, '[data-testid="unit-top"] canvas', j)
        assert crop.shape == (h, w, 3) and np.ptp(crop) > 50  # drawn, not blank
    box = page.locator('[data-testid="unit-top"] canvas').first.bounding_box()
    assert box["width"] >= 40
    screenshot(page, "activations-units")
    assert page_log.errors == []


def test_float16_maps_decode_to_the_same_colours(
    page: Any, acts_run: tuple[str, Any], page_log: Any
) -> None:
    url, (acts, _) = acts_run
    _open(page, url, "?run=acts16&layer=0")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]').length === 4"
    )
    assert page.locator('[data-testid="act-run"]').input_value() == "acts16"
    want = acts["0"][0].numpy()
    lo, hi = float(want.min()), float(want.max())
    for k in range(CHANNELS):
        pixels = _canvas(page, '[data-testid="act-tile"] canvas', k).astype(int)
        assert np.abs(pixels - _viridis(want[k], lo, hi)).max() <= 6
    page.locator('[data-testid="act-tile"]').nth(1).click()
    canvas = page.locator('[data-testid="act-detail-canvas"][data-painted]')
    box = canvas.bounding_box()
    canvas.hover(position={"x": 0.5 * box["width"] / 8, "y": 0.5 * box["height"] / 8})
    page.wait_for_function(  # the hover label updates on the next render
        "() => document.querySelector('[data-testid=act-value]').textContent.includes(' = ')"
    )
    text = page.locator('[data-testid="act-value"]').inner_text()
    assert float(text.split("= ")[1]) == pytest.approx(float(want[1, 0, 0]), rel=2e-3, abs=1e-3)
    assert page_log.errors == []
