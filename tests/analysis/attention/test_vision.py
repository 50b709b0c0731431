"""Vision transformers: the [CLS] → patch map on the grid read from the Hugging Face config,
bilinearly upsampled over the image (checked against a hand-written bilinear resize), its
rollout variant, and the overlay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from deepscope.analysis.attention import Attention, attention
from deepscope.errors import DeepscopeError

transformers = pytest.importorskip("transformers")


def _bilinear(m: np.ndarray, h: int, w: int) -> np.ndarray:
    """Half-pixel-centre bilinear resize (align_corners=False), written out."""
    rows, cols = m.shape
    out = np.zeros((h, w))
    for y in range(h):
        sy = min(max((y + 0.5) * rows / h - 0.5, 0.0), rows - 1)
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, rows - 1), sy - np.floor(sy)
        for x in range(w):
            sx = min(max((x + 0.5) * cols / w - 0.5, 0.0), cols - 1)
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, cols - 1), sx - np.floor(sx)
            top = m[y0, x0] * (1 - fx) + m[y0, x1] * fx
            bot = m[y1, x0] * (1 - fx) + m[y1, x1] * fx
            out[y, x] = top * (1 - fy) + bot * fy
    return out


@pytest.fixture(scope="module")
def vit() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(
        image_size=24,
        patch_size=8,
        num_channels=3,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    return transformers.ViTModel(cfg).eval(), torch.rand(1, 3, 24, 24)


def test_cls_patch_map_on_the_config_grid_and_upsampled(vit) -> None:  # type: ignore[no-untyped-def]
    model, pixels = vit
    a = attention(model, {"pixel_values": pixels})
    assert a.patch_grid == (3, 3)
    grid = a.patch_map()
    cls_row = a[-1].mean(0)[0, 1:].double()
    np.testing.assert_allclose(grid.numpy(), cls_row.reshape(3, 3).numpy(), atol=1e-12)
    head1 = a.patch_map(layer=0, head=1)
    np.testing.assert_allclose(head1.numpy(), a[0][1, 0, 1:].reshape(3, 3).double().numpy())
    up = a.patch_map((24, 30))
    assert up.shape == (24, 30)
    np.testing.assert_allclose(up.numpy(), _bilinear(grid.numpy(), 24, 30), atol=1e-12)
    ro = a.patch_map(method="rollout")
    np.testing.assert_allclose(ro.numpy(), a.rollout()[0, 1:].reshape(3, 3).numpy())


def test_overlay_is_image_sized_and_hot_where_cls_looks(vit) -> None:  # type: ignore[no-untyped-def]
    model, pixels = vit
    a = attention(model, {"pixel_values": pixels})
    img = a.patch_overlay(pixels, alpha=1.0)  # the colormap alone
    assert isinstance(img, Image.Image) and img.size == (24, 24)
    grid = a.patch_map().numpy()
    r, c = np.unravel_index(int(grid.argmax()), grid.shape)
    lo_r, lo_c = np.unravel_index(int(grid.argmin()), grid.shape)
    arr = np.asarray(img).astype(int)
    hot, cold = arr[r * 8 + 4, c * 8 + 4], arr[lo_r * 8 + 4, lo_c * 8 + 4]
    assert hot[0] > hot[2] and cold[2] > cold[0]  # jet: red where high, blue where low
    pil = Image.new("RGB", (40, 20), (128, 128, 128))
    assert a.patch_overlay(pil).size == (40, 20)


def test_grid_given_or_missing() -> None:
    w = torch.zeros(1, 5, 5)
    w[0, 0] = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4])
    a = Attention({"l": w}, {"l": [0]}, ["c", "1", "2", "3", "4"], range(5))
    with pytest.raises(DeepscopeError, match="patch grid"):
        a.patch_map()
    got = a.patch_map(patch_grid=(2, 2), layer="l")
    np.testing.assert_allclose(got.numpy(), [[0.1, 0.2], [0.3, 0.4]], atol=1e-7)
    with pytest.raises(DeepscopeError, match="method"):
        a.patch_map(patch_grid=(2, 2), method="gradcam")
    with pytest.raises(DeepscopeError, match="patch grid"):
        a.patch_map(patch_grid=(3, 3))
