"""A scatter plot as a vector figure (`render.vector.Scene`): one mark per point, coloured by
label, a legend, framed axes with tick labels, axis names and a title, all text as glyph
outlines. Equal scale on both axes (distances in a projection mean the same both ways).

Up to `MAX_VECTOR_POINTS` points each point is one vector mark (an SVG ``<circle>``, a PDF
path); above it the points layer alone is rasterised at the figure's dpi into one embedded
picture (a million ``<circle>``s is a 40 MB SVG that viewers crawl through), while the
frame, ticks, legend and title stay vector.

Example:
    >>> import numpy as np
    >>> s = scatter_scene(np.array([[0.0, 0.0], [1.0, 2.0]]), np.zeros((2, 3), np.uint8), [],
    ...                   title="two points", size=(300, 300), dpi=72)
    >>> s.svg().count("<circle")
    2
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from deepscope.render.vector import Scene, stamp_marks, text_width

__all__ = ["MAX_VECTOR_POINTS", "Frame", "nice_ticks", "scatter_scene"]

MAX_VECTOR_POINTS = 50_000
"""Above this many points the points layer is one embedded picture (see the module doc)."""
TICK_PT, LEGEND_PT, TITLE_PT = 7.5, 8.0, 9.0
_INK, _AXIS = "#262626", "#4d4d4d"
_MINUS = "\u2212"


@dataclass(frozen=True)
class Frame:
    """Where the data lands: the plot box in scene pixels and the data limits it shows."""

    left: float
    top: float
    right: float
    bottom: float
    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def map(self, xy: NDArray[np.float64]) -> NDArray[np.float64]:
        """Data coordinates (N, 2) -> scene pixels (N, 2) (y down)."""
        sx = (self.right - self.left) / (self.xlim[1] - self.xlim[0])
        sy = (self.bottom - self.top) / (self.ylim[1] - self.ylim[0])
        return np.stack([self.left + (xy[:, 0] - self.xlim[0]) * sx,
                         self.bottom - (xy[:, 1] - self.ylim[0]) * sy], axis=1)  # fmt: skip


def _fmt(v: float, step: float) -> str:
    digits = max(0, -math.floor(math.log10(step) + 1e-9))
    if abs(step * 10**digits - round(step * 10**digits)) > 1e-6:  # 2.5, 0.25: one more
        digits += 1
    s = f"{v:.{digits}f}"
    if float(s) == 0:
        s = s.lstrip("-")
    return s.replace("-", _MINUS)


def nice_ticks(lo: float, hi: float, most: int) -> tuple[list[float], float]:
    """At most `most` (>= 2) round tick values (steps of 1, 2, 2.5 or 5 x 10^k) in [lo, hi]."""
    span = hi - lo
    if not span > 0:
        return [lo], 1.0
    raw = span / max(1, most - 1)
    base = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        step = m * base
        first = math.ceil(lo / step - 1e-9)
        ticks = [(first + i) * step for i in range(int(math.floor(hi / step + 1e-9)) - first + 1)]
        if len(ticks) <= most:
            return [0.0 if abs(t) < step * 1e-9 else t for t in ticks], step
    return [lo, hi], span


def _limits(lo: float, hi: float) -> tuple[float, float]:
    if not hi > lo:
        return lo - 1.0, hi + 1.0
    pad = 0.04 * (hi - lo)
    return lo - pad, hi + pad


def scatter_scene(
    xy: Any,
    rgb: Any,
    legend: Sequence[tuple[str, Any]],
    *,
    title: str | None,
    size: tuple[int, int] = (800, 800),
    dpi: float = 150,
    axis_names: tuple[str, str] | None = ("x", "y"),
    max_vector: int = MAX_VECTOR_POINTS,
    radius_pt: float | None = None,
) -> Scene:
    """The figure of points `xy` (N, 2; non-finite rows skipped) coloured `rgb` (N, 3 uint8),
    with `legend` rows (text, rgb) at the right, on a `size` pixel page at `dpi`.
    `axis_names` None draws a frame without ticks (an oblique 3-D view's axes mean nothing)."""
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    cols = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
    w, h = size
    scene = Scene(w, h, dpi, title=title)
    pt = scene.pt
    tick_px, legend_px, title_px = pt(TICK_PT), pt(LEGEND_PT), pt(TITLE_PT)
    pad = pt(6)
    ok = np.isfinite(pts).all(axis=1)
    good = pts[ok]
    lo = good.min(axis=0) if len(good) else np.zeros(2)
    hi = good.max(axis=0) if len(good) else np.ones(2)
    xlim, ylim = _limits(float(lo[0]), float(hi[0])), _limits(float(lo[1]), float(hi[1]))

    top = pad + (title_px * 1.25 + pt(4) if title else 0.0)
    swatch = legend_px * 0.4
    rows = [(text if len(text) <= 24 else text[:23] + "\u2026", c) for text, c in legend]
    legend_w = (pad + 2 * swatch + legend_px * 0.5
                + max((text_width(t, legend_px) for t, _ in rows), default=0.0)) if rows else 0.0  # fmt: skip
    right = w - pad - legend_w
    ticks = axis_names is not None
    tick_len = pt(3)
    label_h = tick_px * 1.2
    bottom = h - pad - ((tick_len + pt(2) + label_h + (label_h + pt(2))) if ticks else 0.0)
    yname_x = pad + label_h * 0.8  # the y axis name's baseline, reading upwards
    widest = 0.0
    for _ in range(3):  # the y tick labels' width sets the frame, which sets the ticks
        left = pad + (label_h + pt(2) + widest + pt(2) + tick_len if ticks else 0.0)
        if right - left < 8 or bottom - top < 8:  # too small a page for a plot: the title
            if title:
                scene.text(w / 2, pad + title_px, title, size=title_px, anchor="middle")
            return scene
        # equal scale: widen the limits of the axis with room to spare
        scale = min((right - left) / (xlim[1] - xlim[0]), (bottom - top) / (ylim[1] - ylim[0]))
        cx, cy = sum(xlim) / 2, sum(ylim) / 2
        hx, hy = (right - left) / scale / 2, (bottom - top) / scale / 2
        frame = Frame(left, top, right, bottom, (cx - hx, cx + hx), (cy - hy, cy + hy))
        need = max((text_width(t, tick_px) for t in _yticks(frame, tick_px)[1]), default=0.0)
        if not ticks or need <= widest:
            break
        widest = need

    at = frame.map(pts)
    n_ok = int(ok.sum())
    r = pt(
        radius_pt
        if radius_pt is not None
        else 2.0
        if n_ok <= 5_000
        else 1.4
        if n_ok <= max_vector
        else 0.8
    )
    if n_ok <= max_vector:
        scene.marks(at[ok], cols[ok], r, cls="points")
    else:
        scene.picture(left, top, _points_layer(frame, at[ok], cols[ok], r), pixelated=False,
                      cls="points-raster")  # fmt: skip
    scene.rect(left, top, right - left, bottom - top, stroke=_AXIS, width=pt(0.6))
    if ticks:
        assert axis_names is not None
        _axes(scene, frame, axis_names, tick_px, tick_len, yname_x)
    fits = max(1, int((h - pad - top) / (legend_px * 1.45)))
    if len(rows) > fits:  # a short page: as many rows as fit, then how many are left out
        more = len(legend) - (fits - 1)
        rows = [*rows[: fits - 1], (f"+{more} more", (255, 255, 255))]
    for i, (text, c) in enumerate(rows):
        y = top + legend_px * (0.9 + 1.45 * i)
        x = right + pad
        scene.marks(
            [[x + swatch, y - legend_px * 0.32]], [list(c)[:3]], swatch, cls="legend-swatch"
        )
        scene.text(x + 2 * swatch + legend_px * 0.5, y, text, size=legend_px, fill=_INK,
                   cls="legend-label")  # fmt: skip
    if title:  # centred over the plot, kept on the page
        half = text_width(title, title_px) / 2
        cx = min(max((left + right) / 2, pad + half), w - pad - half)
        scene.text(cx, pad + title_px, title, size=title_px, anchor="middle", fill=_INK,
                   cls="title")  # fmt: skip
    return scene


def _axes(
    scene: Scene, f: Frame, names: tuple[str, str], size: float, tick_len: float, yname_x: float
) -> None:
    pt = scene.pt
    label_h = size * 1.2
    width = f.right - f.left
    most = 8
    while True:  # as many x ticks as fit with a gap of an em between their labels
        xt, xstep = nice_ticks(*f.xlim, most)
        labels = [_fmt(v, xstep) for v in xt]
        room = width / max(1, len(xt)) if len(xt) > 1 else width
        if most <= 2 or max(text_width(t, size) for t in labels) + size <= room:
            break
        most -= 1
    for v, text in zip(xt, labels, strict=True):
        x = float(f.map(np.array([[v, f.ylim[0]]]))[0, 0])
        scene.line([(x, f.bottom), (x, f.bottom + tick_len)], stroke=_AXIS, width=pt(0.6))
        scene.text(x, f.bottom + tick_len + pt(1.5) + size * 0.76, text, size=size,
                   anchor="middle", fill=_INK, cls="tick-label")  # fmt: skip
    for v, text in zip(*_yticks(f, size), strict=True):
        y = float(f.map(np.array([[f.xlim[0], v]]))[0, 1])
        scene.line([(f.left - tick_len, y), (f.left, y)], stroke=_AXIS, width=pt(0.6))
        scene.text(f.left - tick_len - pt(2), y + size * 0.36, text, size=size,
                   anchor="end", fill=_INK, cls="tick-label")  # fmt: skip
    xname, yname = names
    scene.text((f.left + f.right) / 2, f.bottom + tick_len + pt(3.5) + label_h + size * 0.76,
               xname, size=size, anchor="middle", fill=_INK, cls="axis-label")  # fmt: skip
    scene.text(yname_x, (f.top + f.bottom) / 2, yname, size=size, anchor="middle", fill=_INK,
               vertical=True, cls="axis-label")  # fmt: skip


def _yticks(f: Frame, size: float) -> tuple[list[float], list[str]]:
    """The y ticks: one per 2.2 ems of height at most, 8 at most."""
    yt, step = nice_ticks(*f.ylim, max(2, min(8, int((f.bottom - f.top) / (2.2 * size)))))
    return yt, [_fmt(v, step) for v in yt]


def _points_layer(f: Frame, at: NDArray[np.float64], rgb: NDArray[np.uint8],
                  r: float) -> NDArray[np.uint8]:  # fmt: skip
    """The points drawn into a picture of the plot box at the scene's pixels (4x, averaged
    down)."""
    k = 4
    w, h = max(1, round(f.right - f.left)), max(1, round(f.bottom - f.top))
    layer = Image.new("RGB", (w * k, h * k), "white")
    local = (at - np.array([f.left, f.top])) * k
    stamp_marks(layer, local, rgb, r * k, square=False)
    return np.asarray(layer.resize((w, h), Image.Resampling.BOX), dtype=np.uint8)
