"""The live-model workbench in Chromium (`deepscope.explore`): click a conv node of a small CNN
and the Activations tab's tiles are `deepscope.activations` of that layer (canvas pixels
through viridis); changing the target class changes the Grad-CAM picture; a small
transformer's attention node has an Attention tab. The models and servers are this
module's own."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from e2e_support import CANVAS_PIXELS, STATIC_INDEX, screenshot

pytestmark = pytest.mark.browser

CHANNELS = 6


def _cnn() -> Any:
    import torch
    from torch import nn

    class SmallCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(4, CHANNELS, 3, padding=1)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(CHANNELS, 4)

        def forward(self, x: Any) -> Any:
            h = torch.relu(self.conv1(x))
            h = torch.relu(self.conv2(h))
            return self.fc(self.pool(h).flatten(1))

    torch.manual_seed(0)
    return SmallCNN()


def _transformer() -> Any:
    from torch import nn

    class TinyTransformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(30, 16)
            self.attn = nn.MultiheadAttention(16, 2, batch_first=True)
            self.fc = nn.Linear(16, 3)

        def forward(self, x: Any) -> Any:
            h = self.emb(x)
            a, _ = self.attn(h, h, h)
            return self.fc((h + a).mean(1))

    return TinyTransformer()


@pytest.fixture(scope="module")
def cnn() -> Iterator[tuple[str, Any, Any]]:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built: run `pip install -e .` (builds frontend/)")
    import torch

    import deepscope

    model = _cnn()
    x = torch.rand(5, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    with deepscope.explore(
        model, x, labels=[0, 1, 2, 3, 0], classes=["ant", "bee", "cat", "dog"]
    ) as ex:
        yield ex.url, model, x


def _canvas(page: Any, selector: str, index: int) -> np.ndarray:
    got = page.evaluate(CANVAS_PIXELS, [selector, index])
    rgba = np.frombuffer(base64.b64decode(got["b64"]), dtype=np.uint8)
    return rgba.reshape(got["height"], got["width"], 4)[..., :3]


def _viridis(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    from deepscope.render.colormap import lut

    k = np.clip(np.round((values - lo) / (hi - lo) * 255), 0, 255).astype(int)
    return lut("viridis")[k].astype(int)


def _node(page: Any, node_id: str) -> Any:
    return page.locator(f'[data-testid="graph-node"][data-node-id="{node_id}"]')


def _img(page: Any, selector: str) -> np.ndarray:
    from PIL import Image

    data = page.locator(selector).screenshot()
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def test_conv_node_feature_maps_equal_deepscope_activations(
    page: Any, cnn: tuple[str, Any, Any], page_log: Any
) -> None:
    import deepscope

    url, model, x = cnn
    page.goto(url)
    page.wait_for_selector('[data-testid="wb-strip"] [data-testid="wb-input"] img')
    page.locator('[data-testid="wb-input"][data-index="2"]').click()
    _node(page, "ns:conv2").click()
    page.wait_for_selector('[data-testid="wb-tab-activations"]')
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]').length === {CHANNELS}"
    )
    want = deepscope.activations(model, x[2:3], ["conv2"])["conv2"][0].numpy()
    lo, hi = float(want.min()), float(want.max())
    for k in (0, CHANNELS - 1):
        pixels = _canvas(page, '[data-testid="act-tile"] canvas', k)
        assert pixels.shape == (12, 12, 3)
        assert np.abs(pixels.astype(int) - _viridis(want[k], lo, hi)).max() <= 5
    # picking another input in the strip redraws the open view with that input's maps
    page.locator('[data-testid="wb-input"][data-index="0"]').click()
    page.wait_for_selector('[data-testid="wb-activations"][data-key="activations|ns:conv2|0|pred"]')
    page.wait_for_function(
        f"() => document.querySelectorAll('[data-testid=act-tile] canvas[data-painted]').length === {CHANNELS}"
    )
    other = deepscope.activations(model, x[0:1], ["conv2"])["conv2"][0].numpy()
    pixels = _canvas(page, '[data-testid="act-tile"] canvas', 1)
    want1 = _viridis(other[1], float(other.min()), float(other.max()))
    assert np.abs(pixels.astype(int) - want1).max() <= 5
    page.locator('[data-testid="wb-input"][data-index="2"]').click()
    page.wait_for_selector('[data-testid="wb-activations"][data-key="activations|ns:conv2|2|pred"]')
    # the predictions beside the strip are the model's top classes for input 2
    probs = model(x[2:3]).softmax(1)[0].detach().numpy()
    page.wait_for_selector('[data-testid="wb-preds"] li')
    first = page.locator('[data-testid="wb-preds"] li').first.get_attribute("data-class")
    assert int(first) == int(probs.argmax())
    screenshot(page, "workbench_activations")
    # the unit table over every input, then the Weights tab (the Weights panel's components)
    page.locator('[data-testid="wb-units-open"]').click()
    page.wait_for_selector('[data-testid="wb-units"] tbody tr')
    assert page.locator('[data-testid="wb-units"] tbody tr').count() == CHANNELS
    page.locator('[data-testid="wb-tab-weights"]').click()
    page.wait_for_selector('[data-testid="inspector-weights"] canvas')
    assert "conv2.weight" in page.locator('[data-testid="inspector-weights"]').inner_text()
    screenshot(page, "workbench_weights")
    assert page_log.errors == []


def test_changing_the_target_class_changes_grad_cam(
    page: Any, cnn: tuple[str, Any, Any], page_log: Any
) -> None:
    url, _, _ = cnn
    page.goto(url)
    page.wait_for_selector('[data-testid="wb-strip"]')
    _node(page, "ns:conv2").click()
    page.locator('[data-testid="wb-tab-attribution"]').click()
    img = '[data-testid="wb-gradcam-img"]'
    page.select_option('[data-testid="wb-target"]', "0")
    page.wait_for_function(
        f"() => {{ const i = document.querySelector('{img}'); return i && i.complete && i.naturalWidth > 0"
        " && i.closest('figure').dataset.key.endsWith('|0'); }"
    )
    before = _img(page, img)
    page.select_option('[data-testid="wb-target"]', "3")
    page.wait_for_function(
        f"() => {{ const i = document.querySelector('{img}'); return i && i.complete && i.naturalWidth > 0"
        " && i.closest('figure').dataset.key.endsWith('|3'); }"
    )
    page.wait_for_timeout(100)
    after = _img(page, img)
    assert before.shape == after.shape and before.shape[0] >= 200
    assert np.abs(before - after).mean() > 3, "the Grad-CAM picture did not change with the class"
    assert page.locator('[data-testid="wb-saliency-img"]').count() == 1
    screenshot(page, "workbench_gradcam")
    assert page_log.errors == []


def test_transformer_attention_node_has_an_attention_tab(page: Any, page_log: Any) -> None:
    if not STATIC_INDEX.exists():
        pytest.skip("the frontend is not built")
    import torch

    import deepscope

    model = _transformer()
    ids = torch.randint(0, 30, (3, 7), generator=torch.Generator().manual_seed(2))
    with deepscope.explore(model, ids) as ex:
        page.goto(ex.url)
        page.wait_for_selector('[data-testid="wb-strip"]')
        _node(page, "ns:attn").click()
        page.locator('[data-testid="wb-tab-attention"]').click()
        page.wait_for_selector('[data-testid="wb-attn-heatmap"] canvas')
        assert page.locator('[data-testid="wb-tab-activations"]').count() == 1
        _node(page, "ns:fc").click()
        # the tabs answered for fc itself (until then the inspector shows only what it knows)
        page.wait_for_selector('[data-testid="wb-inspector"][data-tabs-for="ns:fc"]')
        assert page.locator('[data-testid="wb-tab-activations"]').count() == 1
        assert page.locator('[data-testid="wb-tab-attention"]').count() == 0
        _node(page, "ns:attn").click()
        page.locator('[data-testid="wb-tab-attention"]').click()
        page.wait_for_selector('[data-testid="wb-attn-heatmap"] canvas')
        screenshot(page, "workbench_attention")
    assert page_log.errors == []
