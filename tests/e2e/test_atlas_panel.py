"""The Atlas panel in Chromium: a logged atlas (`deepscope.atlas(..., run=run)`) as paged
channel cards, each its optimised image beside its top-k examples with their values, drawn
from the logged PNGs pixel for pixel and shown large; a click enlarges a channel; the graph
inspector's Atlas link on a layer's node opens the panel on that layer. The store and server
are this module's own."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from e2e_support import STATIC_INDEX, ServerThread, canvas_rgba, open_tab, screenshot

pytestmark = pytest.mark.browser

WIDE, K, PAGE = 40, 3, 24  # conv2's channels, examples per channel, cards per page


@pytest.fixture(scope="module")
def atlas_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch
    from torch import nn

    import deepscope

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, WIDE, 3, padding=1)
            self.fc = nn.Linear(WIDE, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.relu(self.conv2(torch.relu(self.conv1(x))))
            return self.fc(h.mean(dim=(2, 3)))

    torch.manual_seed(0)
    model = Net().eval()
    g = torch.Generator().manual_seed(1)
    colours = torch.rand(40, 3, 1, 1, generator=g)  # flat colour plus noise: distinct examples
    data = [
        (colours[i : i + 8] * 0.8 + 0.2 * torch.rand(8, 3, 16, 16, generator=g))
        for i in range(0, 40, 8)
    ]
    root: Path = tmp_path_factory.mktemp("atlas-logdir")
    with deepscope.init(logdir=root, name="atlas") as run:
        run.log_graph(model, torch.zeros(1, 3, 16, 16))
        small = deepscope.atlas(model, "conv1", data, top_k=K, steps=8, run=run, progress=False)
        wide = deepscope.atlas(model, "conv2", data, top_k=K, steps=8, run=run, progress=False)
    with ServerThread(root) as server:
        yield server.url, (small, wide)


def _tile(sprite: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return sprite[y : y + h, x : x + w]


def _shown(locator: Any) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(float)


def test_cards_show_each_channels_image_and_examples_from_the_logged_pngs(
    page: Any, atlas_run: tuple[str, Any]
) -> None:
    url, (_small, wide) = atlas_run
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{url}/#/atlas?run=atlas&layer=conv2")
    page.wait_for_selector('[data-testid="atlas-card"]')
    assert "conv2: 40 channels" in page.get_by_test_id("atlas-summary").text_content()
    cards = page.get_by_test_id("atlas-card")
    assert cards.count() == PAGE
    assert page.get_by_test_id("atlas-image").count() == PAGE
    assert page.get_by_test_id("atlas-example-image").count() == PAGE * K
    images, examples, cols = wide.sprites()
    h, w = wide.viz.images.shape[-2:]
    eh, ew = examples.shape[0] // 3, examples.shape[1] // (cols * K)
    for i in (0, 5, 23):
        c = i  # page 1 holds channels 0..23 in order
        assert cards.nth(i).get_attribute("data-channel") == str(c)
        r, q = divmod(c, cols)
        drawn = canvas_rgba(page, '[data-testid="atlas-image"]', i)[..., :3]
        assert np.array_equal(drawn, _tile(images, (q * w, r * h, w, h)))
        assert np.array_equal(drawn, wide.viz.rgb()[c])
        for j in range(K):
            ex = canvas_rgba(page, '[data-testid="atlas-example-image"]', i * K + j)[..., :3]
            assert np.array_equal(ex, _tile(examples, ((q * K + j) * ew, r * eh, ew, eh)))
        values = cards.nth(i).get_by_test_id("atlas-example-value").all_text_contents()
        assert [float(v) for v in values] == pytest.approx(wide.values[c], rel=2e-3, abs=2e-3)
    # shown large (no 8-pixel pictures), crisp: the on-screen mean colour is the tile's
    first = page.get_by_test_id("atlas-image").first
    box = first.bounding_box()
    assert box["width"] >= 100 and box["height"] >= 100
    assert page.get_by_test_id("atlas-example-image").first.bounding_box()["width"] >= 60
    seen = _shown(first).reshape(-1, 3).mean(axis=0)
    assert np.abs(seen - wide.viz.rgb()[0].reshape(-1, 3).mean(axis=0)).max() < 6
    screenshot(page, "atlas_panel")

    # the second page: channels 24..39
    page.get_by_test_id("atlas-next").click()
    page.wait_for_selector('[data-testid="atlas-card"][data-channel="24"]')
    assert cards.count() == WIDE - PAGE
    assert "channels 24–39 of 40" in page.get_by_test_id("atlas-page").text_content()
    drawn = canvas_rgba(page, '[data-testid="atlas-image"]', WIDE - PAGE - 1)[..., :3]
    assert np.array_equal(drawn, wide.viz.rgb()[WIDE - 1])


def test_clicking_a_card_enlarges_its_channel(page: Any, atlas_run: tuple[str, Any]) -> None:
    url, (_small, wide) = atlas_run
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(f"{url}/#/atlas?run=atlas&layer=conv2")
    page.wait_for_selector('[data-testid="atlas-card"]')
    page.get_by_test_id("atlas-open").nth(3).click()
    detail = page.get_by_test_id("atlas-detail")
    detail.wait_for()
    assert detail.get_attribute("data-channel") == "3"
    big = page.get_by_test_id("atlas-detail-image")
    assert big.bounding_box()["width"] >= 300
    assert np.array_equal(
        canvas_rgba(page, '[data-testid="atlas-detail-image"]')[..., :3], wide.viz.rgb()[3]
    )
    assert page.get_by_test_id("atlas-detail-example").count() == K
    assert page.get_by_test_id("atlas-detail-example-image").first.bounding_box()["width"] >= 160
    screenshot(page, "atlas_detail")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector('[data-testid="atlas-detail"][data-channel="4"]')
    page.keyboard.press("Escape")
    detail.wait_for(state="detached")


def test_graph_nodes_atlas_link_opens_the_panel_on_that_layer(
    page: Any, atlas_run: tuple[str, Any]
) -> None:
    url, _ = atlas_run
    page.set_viewport_size({"width": 1400, "height": 1000})
    open_tab(page, url, "graph")
    node = page.locator('[data-testid="graph-node"][data-node-id="ns:conv2"]')
    node.wait_for()
    node.click()
    link = page.get_by_test_id("inspector-atlas-link")
    link.wait_for()
    screenshot(page, "atlas_graph_link")
    # the classifier has no atlas: no link
    page.locator('[data-testid="graph-node"][data-node-id="ns:fc"]').click()
    page.wait_for_selector('[data-testid="graph-inspector"][data-node-id="ns:fc"]')
    assert page.get_by_test_id("inspector-atlas-link").count() == 0
    page.locator('[data-testid="graph-node"][data-node-id="ns:conv2"]').click()
    page.get_by_test_id("inspector-atlas-link").click()
    page.wait_for_selector('[data-testid="panel-atlas"] [data-testid="atlas-card"]')
    assert "layer=conv2" in page.evaluate("location.hash")
    # conv2 (40 channels), not the first-logged conv1 (8)
    assert "conv2: 40 channels" in page.get_by_test_id("atlas-summary").text_content()
    assert page.get_by_test_id("atlas-card").count() == PAGE
