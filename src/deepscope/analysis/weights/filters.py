"""Conv filters as pictures: RGB/grey images for 1- or 3-channel inputs (each filter
normalised to its own min..max), per-channel diverging tiles for deeper kernels.

Example:
    >>> import numpy as np
    >>> filter_images(np.zeros((2, 3, 5, 5))).shape
    (2, 5, 5, 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.render.colormap import apply_colormap
from deepscope.render.grid import Grid
from deepscope.render.weights import render_image_tiles, symmetric_limit

__all__ = ["filter_grid", "filter_images"]


def filter_images(kernel: NDArray[Any]) -> NDArray[np.uint8]:
    """(out, 1|3, kh, kw) → (out, kh, kw, 3) uint8, each filter stretched to 0..255."""
    k = np.nan_to_num(np.asarray(kernel, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if k.ndim != 4 or k.shape[1] not in (1, 3):
        raise ValueError(f"filter_images needs (out, 1 or 3, kh, kw), got {k.shape}")
    out = np.transpose(k, (0, 2, 3, 1))
    lo = out.reshape(len(out), -1).min(axis=1)[:, None, None, None]
    hi = out.reshape(len(out), -1).max(axis=1)[:, None, None, None]
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = (out - lo) / span
    if norm.shape[-1] == 1:
        norm = np.repeat(norm, 3, axis=-1)
    result: NDArray[np.uint8] = np.clip(np.rint(norm * 255.0), 0, 255).astype(np.uint8)
    return result


def filter_grid(kernel: NDArray[Any], *, title: str | None = None, max_tiles: int = 256) -> Grid:
    """A grid of filters: RGB/grey images when the input has 1 or 3 channels, else one
    diverging tile (centred at 0, shared scale) per (filter, input channel), at most
    `max_tiles` of them."""
    k = np.asarray(kernel, dtype=np.float64)
    if k.ndim == 3:  # Conv1d (out, in, k): one row per tile
        k = k[:, :, None, :]
    if k.ndim != 4:
        raise ValueError(f"a filter grid needs a conv kernel (out, in, kh, kw), got {k.shape}")
    o, i = k.shape[:2]
    if i in (1, 3):
        n = min(o, max_tiles)
        return render_image_tiles(
            filter_images(k[:n]), [f"f{j}" for j in range(n)], title=_title(title, n, o)
        )
    v = symmetric_limit(k)
    flat = k.reshape(o * i, k.shape[2], k.shape[3])[:max_tiles]
    scaled = np.full(flat.shape, 0.5) if v <= 0 else 0.5 + flat / (2.0 * v)
    tiles = apply_colormap(np.where(np.isnan(flat), 0.5, scaled), "rdbu")
    labels = [f"{j // i}:{j % i}" for j in range(len(flat))]
    note = f" (±{v:.3g}, filter:channel)"
    return render_image_tiles(tiles, labels, title=_title(title, len(flat), o * i) + note)


def _title(title: str | None, shown: int, total: int) -> str:
    base = title or "filters"
    return base if shown == total else f"{base}: first {shown} of {total}"
