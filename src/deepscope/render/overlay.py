"""Heatmap-over-image blending with numpy and Pillow.

Example:
    >>> import numpy as np
    >>> img = overlay(np.zeros((8, 8, 3), np.uint8), np.eye(8), alpha=0.5)
    >>> img.size, img.mode
    ((8, 8), 'RGB')
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from deepscope.render.colormap import apply_colormap


def to_rgb_array(image: Any) -> NDArray[np.uint8]:
    """An (H, W, 3) uint8 array from a PIL image, an HWC/CHW/HW array or a CHW torch tensor.

    Float data in [0, 1] is scaled by 255; other float ranges are min-max scaled.
    """
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if hasattr(image, "detach"):
        image = image.detach().cpu().float().numpy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"expected an image of shape HW, HWC or CHW, got {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        f = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(f.min()), float(f.max())
        if lo < 0.0 or hi > 1.0:
            f = (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
        arr = np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8)
    return arr


def resize_map(values: NDArray[np.floating], size: tuple[int, int]) -> NDArray[np.float64]:
    """Bilinearly resize a 2-D map to `size` = (width, height)."""
    if (values.shape[1], values.shape[0]) == size:
        return np.asarray(values, dtype=np.float64)
    img = Image.fromarray(np.asarray(values, dtype=np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR), dtype=np.float64)


def heatmap(values: NDArray[np.floating], cmap: str = "jet") -> Image.Image:
    """A 2-D map in [0, 1] rendered as an RGB image."""
    return Image.fromarray(apply_colormap(values, cmap), mode="RGB")


def overlay(
    image: Any, values: NDArray[np.floating], cmap: str = "jet", alpha: float = 0.5
) -> Image.Image:
    """Blend a colormapped 2-D map in [0, 1] over `image`: `alpha` is the heatmap's weight.

    The map is resized to the image. With `image=None` the heatmap alone is returned.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if image is None:
        return heatmap(values, cmap)
    base = to_rgb_array(image)
    values = resize_map(np.asarray(values), (base.shape[1], base.shape[0]))
    colored = apply_colormap(values, cmap).astype(np.float64)
    mixed = alpha * colored + (1.0 - alpha) * base.astype(np.float64)
    return Image.fromarray(np.clip(np.rint(mixed), 0, 255).astype(np.uint8), mode="RGB")
