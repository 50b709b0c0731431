"""Captioned picture grids as vector figures (`render.vector.Scene`): the feature
visualisation grid (a caption over each picture) and the atlas (a label over each row of
pictures). Pictures keep their pixels (crisp, scaled up to `tile` scene pixels, at the
figure's dpi); captions, labels and the title are glyph outlines.

Example:
    >>> import numpy as np
    >>> s = grid_scene([("conv:0", np.zeros((4, 4, 3), np.uint8))], title="t", dpi=72)
    >>> s.svg().count("<image"), "<text" in s.svg()
    (1, False)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from deepscope.render.vector import Scene, text_width

__all__ = ["CAPTION_PT", "fit", "grid_scene", "rows_scene"]

CAPTION_PT, TITLE_PT = 7.0, 9.0
_INK = "#262626"


def fit(text: str, width: float, size: float) -> str:
    """`text`, cut with an ellipsis to fit `width` at `size` per em."""
    if text_width(text, size) <= width:
        return text
    while text and text_width(text + "\u2026", size) > width:
        text = text[:-1]
    return text + "\u2026" if text else ""


def _tile_size(rgb: Any, tile: float) -> tuple[float, float]:
    h, w = np.asarray(rgb).shape[:2]
    f = tile / max(h, w)
    return w * f, h * f


def _title(scene: Scene, title: str | None, pad: float) -> float:
    """Draw the title centred at the top; returns where the content starts."""
    if not title:
        return pad
    size = scene.pt(TITLE_PT)
    scene.text(scene.width / 2, pad + size, title, size=size, anchor="middle", fill=_INK,
               cls="title")  # fmt: skip
    return pad + size * 1.3 + pad


def grid_scene(
    cells: Sequence[tuple[str, Any]],
    *,
    title: str | None = None,
    dpi: float = 150,
    tile: float = 96,
    columns: int | None = None,
) -> Scene:
    """The pictures of `cells` ((caption, (H, W, 3) uint8)) in a grid of `columns` (default
    about square), each scaled to `tile` pixels on its long side, its caption above it."""
    n = len(cells)
    cols = max(1, min(n, columns or math.ceil(math.sqrt(max(n, 1)))))
    rows = math.ceil(n / cols) if n else 0
    probe = Scene(1, 1, dpi)
    pad, cap = probe.pt(4), probe.pt(CAPTION_PT)
    band = cap * 1.35
    width = pad + cols * (tile + pad)
    head = _title_height(probe, title, pad)
    height = head + rows * (band + tile + pad)
    if title:
        width = max(width, text_width(title, probe.pt(TITLE_PT)) + 2 * pad)
    scene = Scene(math.ceil(width), math.ceil(height), dpi, title=title)
    top = _title(scene, title, pad)
    # one caption size for all: the largest from CAPTION_PT down to 5 pt at which every
    # caption fits its tile; a caption still too long is cut
    for points in np.arange(CAPTION_PT, 4.99, -0.5):
        size = scene.pt(float(points))
        if all(text_width(c, size) <= tile for c, _ in cells):
            break
    x_off = (scene.width - (pad + cols * (tile + pad))) / 2
    for i, (caption, rgb) in enumerate(cells):
        x = x_off + pad + (i % cols) * (tile + pad)
        y = top + (i // cols) * (band + tile + pad)
        scene.text(x, y + cap, fit(caption, tile, size), size=size, fill=_INK, cls="caption")
        w, h = _tile_size(rgb, tile)
        scene.picture(x, y + band, rgb, w=w, h=h)
    return scene


def _title_height(probe: Scene, title: str | None, pad: float) -> float:
    return pad + (probe.pt(TITLE_PT) * 1.3 + pad if title else 0.0)


def rows_scene(
    rows: Sequence[tuple[str, Sequence[Any]]],
    *,
    title: str | None = None,
    dpi: float = 150,
    tile: float = 64,
    gap_after_first: bool = True,
) -> Scene:
    """One row per (label, pictures): the label above, the pictures side by side scaled to
    `tile` pixels on their long side (a wider gap after the first, the atlas's optimised
    image, when `gap_after_first`)."""
    probe = Scene(1, 1, dpi)
    pad, cap = probe.pt(3), probe.pt(CAPTION_PT)
    band = cap * 1.35
    most = max((len(p) for _, p in rows), default=0)
    width = pad + most * (tile + pad) + (pad * 2 if gap_after_first and most > 1 else 0.0)
    if title:
        width = max(width, text_width(title, probe.pt(TITLE_PT)) + 2 * pad)
    height = _title_height(probe, title, pad) + len(rows) * (band + tile + pad)
    scene = Scene(math.ceil(width), math.ceil(height), dpi, title=title)
    y = _title(scene, title, pad)
    for label, pictures in rows:
        scene.text(pad, y + cap, fit(label, width - 2 * pad, cap), size=cap, fill=_INK,
                   cls="row-label")  # fmt: skip
        x = pad
        for j, rgb in enumerate(pictures):
            w, h = _tile_size(rgb, tile)
            scene.picture(x + (tile - w) / 2, y + band + (tile - h) / 2, rgb, w=w, h=h)
            x += tile + pad + (pad * 2 if j == 0 and gap_after_first else 0.0)
        y += band + tile + pad
    return scene
