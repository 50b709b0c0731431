"""Vision transformers: the [CLS] → patch attention (or its rollout) on the patch grid,
upsampled bilinearly over the input image.

A ViT-style sequence is a few leading special tokens ([CLS], distillation or register
tokens) followed by rows × columns patches in row-major order; the grid comes from the
Hugging Face config (``image_size // patch_size``) or is given.

Example:
    >>> import torch
    >>> row = torch.tensor([0.2, 0.1, 0.2, 0.3, 0.2], dtype=torch.float64)  # [CLS], 2 × 2
    >>> patch_grid_map(row, (2, 2)).tolist()
    [[0.1, 0.2], [0.3, 0.2]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from deepscope.errors import DeepscopeError
from deepscope.render.overlay import overlay


def patch_grid_map(row: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """The last rows·cols entries of a key row, as a (rows, cols) map."""
    rows, cols = grid
    n = rows * cols
    if row.dim() != 1 or row.shape[0] < n:
        raise DeepscopeError(
            f"a {rows} × {cols} patch grid needs at least {n} keys, got {tuple(row.shape)}; "
            "pass patch_grid= matching the model's patches"
        )
    return row[-n:].reshape(rows, cols)


def upsample(values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (rows, cols) map to `size` = (height, width), float64."""
    x = values.to(torch.float64)[None, None]
    out = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return out[0, 0]


def image_size_of(image: Any) -> tuple[int, int]:
    """(height, width) of a PIL image, an HWC/CHW/HW array or a (1,) C, H, W tensor."""
    if isinstance(image, Image.Image):
        return image.size[1], image.size[0]
    shape = tuple(getattr(image, "shape", np.asarray(image).shape))
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    if len(shape) == 3:
        if shape[0] in (1, 3, 4) and shape[-1] not in (1, 3, 4):
            return int(shape[1]), int(shape[2])
        return int(shape[0]), int(shape[1])
    raise DeepscopeError(f"expected an image of shape HW, HWC or CHW, got {shape}")


def overlay_map(values: torch.Tensor, image: Any, cmap: str = "jet", alpha: float = 0.5) -> Any:
    """The map scaled to [0, 1] and blended over `image` (a PIL RGB image)."""
    v = values.to(torch.float64)
    lo, hi = float(v.min()), float(v.max())
    unit = (v - lo) / (hi - lo) if hi > lo else torch.zeros_like(v)
    if image is not None and hasattr(image, "dim") and image.dim() == 4:
        image = image[0]
    return overlay(image, unit.numpy(), cmap=cmap, alpha=alpha)
