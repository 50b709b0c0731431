"""Labelled image grids and heatmaps of activations (numpy + Pillow).

`render_grid` draws one tile per channel of a (C, H, W) array, each upscaled by a whole
factor with nearest-neighbour pixels so a small map (4×4, 8×8) is at least `min_tile`
pixels on its long side and every source pixel stays a crisp square. Values map through
a perceptual colormap (`deepscope.render.colormap`, viridis by default) on a scale shared
by every tile or per tile, and a colorbar on the right says which colour is which value.
`render_heatmap` draws one (rows, columns) matrix the same way, with optional row and
column labels (units × time with tokens, tokens × units).

Example:
    >>> import numpy as np
    >>> g = render_grid(np.zeros((2, 8, 8)))
    >>> g.boxes[0][2] - g.boxes[0][0]
    64
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from deepscope.render.colormap import apply_colormap

__all__ = ["Grid", "render_grid", "render_heatmap", "upscale"]

_PAD = 6
_LABEL = 14
_BAR_W = 14
_BG = (255, 255, 255)
_INK = (30, 30, 30)


@dataclass
class Grid:
    """A rendered picture: `pixels` (H, W, 3) uint8 and each tile's box (x0, y0, x1, y1)."""

    pixels: NDArray[np.uint8]
    boxes: list[tuple[int, int, int, int]]
    ranges: list[tuple[float, float]]

    def image(self) -> NDArray[np.uint8]:
        """The picture as an (H, W, 3) uint8 array."""
        return self.pixels

    def save(self, path: str | Path, *, dpi: float = 150, title: str | None = None) -> Path:
        """Write the picture as PNG, SVG or PDF by the suffix (`render.figure`), `title`
        above it as vector outlines (SVG, PDF); returns the path."""
        from deepscope.render.figure import save_figure

        return save_figure(self.pixels, path, dpi=dpi, title=title)

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(self.pixels).save(buf, format="PNG")
        return buf.getvalue()


def upscale(rgb: NDArray[np.uint8], factor_y: int, factor_x: int) -> NDArray[np.uint8]:
    """Nearest-neighbour upscaling by whole factors (crisp squares, no blur)."""
    out: NDArray[np.uint8] = np.repeat(np.repeat(rgb, factor_y, axis=0), factor_x, axis=1)
    return out


def _factor(size: int, minimum: int) -> int:
    return max(1, math.ceil(minimum / max(size, 1)))


def _finite_range(values: NDArray[np.floating]) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def _normalise(values: NDArray[np.floating], lo: float, hi: float) -> NDArray[np.float64]:
    span = hi - lo
    v = np.asarray(values, dtype=np.float64)
    return np.zeros_like(v) if span <= 0 else (v - lo) / span


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def _colorbar(
    canvas: Image.Image, x: int, y: int, height: int, lo: str, hi: str, cmap: str
) -> None:
    ramp = np.linspace(1.0, 0.0, max(height, 2))[:, None].repeat(_BAR_W, axis=1)
    canvas.paste(Image.fromarray(apply_colormap(ramp, cmap)), (x, y))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((x - 1, y - 1, x + _BAR_W, y + height), outline=_INK)
    font = ImageFont.load_default()
    draw.text((x + _BAR_W + 4, y), hi, fill=_INK, font=font)
    draw.text((x + _BAR_W + 4, y + height - 11), lo, fill=_INK, font=font)


def _text_width(text: str) -> int:
    font = ImageFont.load_default()
    return int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font))


def render_grid(
    maps: NDArray[np.floating],
    labels: Sequence[str] | None = None,
    *,
    scale: str = "shared",
    cmap: str = "viridis",
    min_tile: int = 64,
    columns: int | None = None,
    title: str | None = None,
) -> Grid:
    """One labelled tile per channel of `maps` (C, H, W), with a colorbar.

    `scale="shared"` maps one range (min..max over every tile) to the colormap, so tiles
    compare; `scale="channel"` stretches each tile to its own range (the colorbar then reads
    "min".."max" of each tile; `Grid.ranges` holds the numbers). NaN and infinities draw as
    the low end.
    """
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"render_grid needs a non-empty (C, H, W) array, got shape {arr.shape}")
    if scale not in ("shared", "channel"):
        raise ValueError(f"scale must be 'shared' or 'channel', not {scale!r}")
    c, h, w = arr.shape
    labels = list(labels) if labels is not None else [str(i) for i in range(c)]
    cols = columns or max(1, math.ceil(math.sqrt(c)))
    rows = math.ceil(c / cols)
    fy = fx = _factor(max(h, w), min_tile)  # one factor keeps the aspect ratio
    th, tw = h * fy, w * fx
    top = _PAD + (_LABEL if title else 0)
    bar_x = _PAD + cols * (tw + _PAD) + _PAD
    width = bar_x + _BAR_W + 8 + 7 * 8
    height = top + rows * (th + _LABEL + _PAD) + _PAD
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((_PAD, _PAD - 2), title, fill=_INK, font=font)
    shared = _finite_range(arr)
    boxes: list[tuple[int, int, int, int]] = []
    ranges: list[tuple[float, float]] = []
    for i in range(c):
        lo, hi = shared if scale == "shared" else _finite_range(arr[i])
        ranges.append((lo, hi))
        rgb = upscale(apply_colormap(_normalise(arr[i], lo, hi), cmap), fy, fx)
        x0 = _PAD + (i % cols) * (tw + _PAD)
        y0 = top + (i // cols) * (th + _LABEL + _PAD) + _LABEL
        draw.text((x0, y0 - _LABEL + 1), labels[i], fill=_INK, font=font)
        canvas.paste(Image.fromarray(rgb), (x0, y0))
        boxes.append((x0, y0, x0 + tw, y0 + th))
    bar_h = min(256, height - top - 2 * _PAD - _LABEL)
    lo_s, hi_s = (_fmt(shared[0]), _fmt(shared[1])) if scale == "shared" else ("min", "max")
    _colorbar(canvas, bar_x, top + _LABEL, max(bar_h, 16), lo_s, hi_s, cmap)
    return Grid(np.asarray(canvas, dtype=np.uint8).copy(), boxes, ranges)


def render_heatmap(
    matrix: NDArray[np.floating],
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    cmap: str = "viridis",
    min_cell: int = 8,
    min_size: int = 64,
    title: str | None = None,
) -> Grid:
    """A (rows, columns) matrix as one heatmap with a shared scale and a colorbar; labels
    on the left (rows) and under the columns (drawn vertically-stacked when they are wide,
    every one of them when the cells are large enough, else every k-th)."""
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"render_heatmap needs a non-empty 2-D array, got shape {arr.shape}")
    r, c = arr.shape
    fy = max(_factor(r, min_size), min_cell if r <= 64 else 1)
    fx = max(_factor(c, min_size), min_cell if c <= 128 else 1)
    lo, hi = _finite_range(arr)
    rgb = upscale(apply_colormap(_normalise(arr, lo, hi), cmap), fy, fx)
    left = _PAD + (max((_text_width(s) for s in row_labels), default=0) + 4 if row_labels else 0)
    top = _PAD + (_LABEL if title else 0)
    col_w = max((_text_width(s) for s in col_labels), default=0) if col_labels else 0
    bottom = (_LABEL + 2) if col_labels else 0
    if col_labels and col_w + 2 > fx:
        bottom = min(col_w, 120) + 4  # labels written one above the other, rotated
    width = left + c * fx + _PAD + _BAR_W + 8 + 7 * 8
    height = top + r * fy + bottom + _PAD
    canvas = Image.new("RGB", (width, max(height, top + 64)), _BG)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((_PAD, _PAD - 2), title, fill=_INK, font=font)
    canvas.paste(Image.fromarray(rgb), (left, top))
    if row_labels:
        step = max(1, math.ceil(12 / fy))
        for i in range(0, r, step):
            draw.text((_PAD, top + i * fy + (fy - 11) // 2), row_labels[i], fill=_INK, font=font)
    if col_labels:
        if col_w + 2 <= fx:
            for j, s in enumerate(col_labels):
                draw.text((left + j * fx, top + r * fy + 2), s, fill=_INK, font=font)
        else:
            step = max(1, math.ceil(12 / fx))
            for j in range(0, c, step):
                label = Image.new("RGB", (min(col_w, 120) + 2, 12), _BG)
                ImageDraw.Draw(label).text((0, 0), col_labels[j], fill=_INK, font=font)
                rotated = label.rotate(90, expand=True)
                canvas.paste(rotated, (left + j * fx + (fx - 12) // 2, top + r * fy + 2))
    bar_h = max(min(256, r * fy), 16)
    _colorbar(canvas, left + c * fx + _PAD, top, bar_h, _fmt(lo), _fmt(hi), cmap)
    return Grid(
        np.asarray(canvas, dtype=np.uint8).copy(),
        [(left, top, left + c * fx, top + r * fy)],
        [(lo, hi)],
    )
