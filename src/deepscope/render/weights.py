"""Weight pictures (numpy + Pillow): a diverging heatmap centred at 0, and RGB/grey tiles.

`render_diverging` maps [-v, v] (v = max |w| over finite values) through the ``rdbu``
colormap of `deepscope.render.colormap` so 0 is always the middle colour, negative blue and
positive red, with a colorbar (`grid._colorbar`) and an optional note line (e.g. "max-|w|
pooled 49×4"). `render_image_tiles` lays out small RGB images (first-layer conv filters).

Example:
    >>> import numpy as np
    >>> g = render_diverging(np.array([[-1.0, 0.0, 1.0]]))
    >>> g.ranges
    [(-1.0, 1.0)]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from deepscope.render.colormap import apply_colormap
from deepscope.render.grid import _BAR_W, _BG, _INK, _LABEL, _PAD, Grid, _colorbar, upscale

__all__ = ["render_diverging", "render_esd", "render_image_tiles", "symmetric_limit"]


def symmetric_limit(values: NDArray[np.floating]) -> float:
    """max |v| over the finite values (0 when there are none)."""
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size else 0.0


def render_diverging(
    matrix: NDArray[np.floating],
    *,
    title: str | None = None,
    note: str | None = None,
    min_size: int = 64,
    limit: float | None = None,
) -> Grid:
    """One (rows, columns) matrix on a diverging scale centred at 0, with a colorbar.

    NaN draws as the centre colour; ±Inf as the ends. Small matrices are upscaled by whole
    factors (crisp cells).
    """
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"render_diverging needs a non-empty 2-D array, got {arr.shape}")
    v = symmetric_limit(arr) if limit is None else float(limit)
    scaled = np.full(arr.shape, 0.5) if v <= 0 else 0.5 + arr / (2.0 * v)
    scaled = np.where(np.isnan(arr), 0.5, scaled)
    r, c = arr.shape
    fy = max(1, math.ceil(min_size / r)) if r < min_size else 1
    fx = max(1, math.ceil(min_size / c)) if c < min_size else 1
    if r == 1:  # a strip: make it readable
        fy = max(fy, 16)
    rgb = upscale(apply_colormap(scaled, "rdbu"), fy, fx)
    top = _PAD + (_LABEL if title else 0) + (_LABEL if note else 0)
    left = _PAD
    width = left + c * fx + _PAD + _BAR_W + 8 + 8 * 8
    height = max(top + r * fy + _PAD, top + 64)
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    y = _PAD - 2
    if title:
        draw.text((_PAD, y), title, fill=_INK, font=font)
        y += _LABEL
    if note:
        draw.text((_PAD, y), note, fill=_INK, font=font)
    canvas.paste(Image.fromarray(rgb), (left, top))
    bar_h = max(min(256, r * fy), 32)
    _colorbar(canvas, left + c * fx + _PAD, top, bar_h, f"{-v:.3g}", f"{v:.3g}", "rdbu")
    return Grid(
        np.asarray(canvas, dtype=np.uint8).copy(),
        [(left, top, left + c * fx, top + r * fy)],
        [(-v, v)],
    )


def render_image_tiles(
    images: NDArray[np.uint8],
    labels: Sequence[str] | None = None,
    *,
    min_tile: int = 48,
    title: str | None = None,
) -> Grid:
    """(N, H, W, 3) uint8 images as a labelled grid of crisp tiles."""
    n, h, w, _ = images.shape
    labels = list(labels) if labels is not None else [str(i) for i in range(n)]
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    f = max(1, math.ceil(min_tile / max(h, w, 1)))
    th, tw = h * f, w * f
    top = _PAD + (_LABEL if title else 0)
    width = _PAD + cols * (tw + _PAD)
    height = top + rows * (th + _LABEL + _PAD) + _PAD
    canvas = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((_PAD, _PAD - 2), title, fill=_INK, font=font)
    boxes = []
    for i in range(n):
        x0 = _PAD + (i % cols) * (tw + _PAD)
        y0 = top + (i // cols) * (th + _LABEL + _PAD) + _LABEL
        draw.text((x0, y0 - _LABEL + 1), labels[i], fill=_INK, font=font)
        canvas.paste(Image.fromarray(upscale(images[i], f, f)), (x0, y0))
        boxes.append((x0, y0, x0 + tw, y0 + th))
    return Grid(np.asarray(canvas, dtype=np.uint8).copy(), boxes, [])


def render_esd(
    evals: NDArray[np.floating],
    *,
    xmin: float | None = None,
    title: str | None = None,
    bins: int = 40,
    size: tuple[int, int] = (320, 160),
) -> Grid:
    """Histogram of the positive `evals` on log axes (log10 value bins, log count bars),
    with the power-law fit's `xmin` as a vertical line. `Grid.ranges` holds the log10
    value range drawn; `boxes[0]` the plot area."""
    x = np.asarray(evals, dtype=np.float64)
    x = x[np.isfinite(x) & (x > 0)]
    if x.size == 0:
        raise ValueError("no positive eigenvalue to draw")
    logs = np.log10(x)
    lo, hi = float(logs.min()), float(logs.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, _ = np.histogram(logs, bins=bins, range=(lo, hi))
    heights = np.log10(counts + 1.0)
    pw, ph = size
    left, top = _PAD + 4, _PAD + (_LABEL if title else 0)
    canvas = Image.new("RGB", (left + pw + _PAD, top + ph + _LABEL + _PAD), _BG)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    if title:
        draw.text((_PAD, _PAD - 2), title, fill=_INK, font=font)
    bar_w = pw / bins
    scale = ph / max(float(heights.max()), 1e-9)
    for i, h in enumerate(heights):
        if counts[i]:
            x0 = left + int(i * bar_w)
            x1 = left + max(int((i + 1) * bar_w) - 1, int(i * bar_w))
            draw.rectangle(
                (x0, top + ph - max(1, int(h * scale)), x1, top + ph), fill=(70, 110, 180)
            )
    draw.line((left, top + ph, left + pw, top + ph), fill=_INK)
    if xmin is not None and np.isfinite(xmin) and xmin > 0:
        xm = left + int((np.log10(xmin) - lo) / (hi - lo) * pw)
        draw.line((xm, top, xm, top + ph), fill=(200, 30, 30), width=1)
    draw.text((left, top + ph + 2), f"1e{lo:.1f}", fill=_INK, font=font)
    draw.text((left + pw - 40, top + ph + 2), f"1e{hi:.1f}", fill=_INK, font=font)
    return Grid(
        np.asarray(canvas, dtype=np.uint8).copy(), [(left, top, left + pw, top + ph)], [(lo, hi)]
    )
