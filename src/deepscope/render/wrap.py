"""Wrap the rows of a tall layered drawing into side-by-side columns.

Rows stay whole and in order; column k holds a contiguous run of rows, read top to bottom,
then the next column to its right. The number of columns is the one whose drawing's
width / height comes nearest `aspect`, tried for 1..64 columns at O(rows) each. Edges that
cross from one column to the next run along the column's foot, up the gutter to its right
and along a lane above all columns (`Bands.top`), then down into their target.

Example:
    >>> b = place_bands([(0.0, 100.0)] * 40, [30.0] * 40, v_gap=40, margin=20, aspect=1.0)
    >>> b.columns > 1 and 0.5 < b.width / b.height < 2
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Bands", "place_bands"]

_MAX_COLUMNS = 64
_LANE = 24.0  # room above the columns for edges that change column
_COL_GAP = 56.0
_TALL = 2.0  # wrap only drawings taller than this many times their width


@dataclass
class Bands:
    """Per row: x shift `dx`, centre `y`, column `band_of`; per column: the y of its
    `foot` (a lane below its last row) and the x of the `gutter` right of it; the y of the
    lane above all columns, `top`; the canvas size."""

    dx: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    band_of: list[int] = field(default_factory=list)
    foot: list[float] = field(default_factory=list)
    gutter: list[float] = field(default_factory=list)
    top: float = 0.0
    width: float = 0.0
    height: float = 0.0
    columns: int = 1
    work: int = 0


def _split(tops: list[float], heights: list[float], total: float, columns: int) -> list[int]:
    """Column of each row: by where its middle falls in `total`, renumbered densely."""
    raw = [
        min(columns - 1, int((t + h / 2) * columns / total)) if total > 0 else 0
        for t, h in zip(tops, heights, strict=True)
    ]
    dense: list[int] = []
    last, k = -1, -1
    for b in raw:
        if b != last:
            k += 1
            last = b
        dense.append(k)
    return dense


def _size(
    band_of: list[int],
    spans: list[tuple[float, float]],
    heights: list[float],
    v_gap: float,
    margin: float,
) -> tuple[list[tuple[float, float]], list[float], float, float]:
    """Each column's x extent and height, and the canvas width and height."""
    n = band_of[-1] + 1 if band_of else 1
    ext = [(math.inf, -math.inf)] * n
    tall = [0.0] * n
    for b, (lo, hi), h in zip(band_of, spans, heights, strict=True):
        ext[b] = (min(ext[b][0], lo), max(ext[b][1], hi))
        tall[b] += h + v_gap
    ext = [(lo, hi) if lo <= hi else (0.0, 0.0) for lo, hi in ext]
    width = sum(hi - lo for lo, hi in ext) + (n - 1) * _COL_GAP + 2 * margin
    lanes = 2 * _LANE if n > 1 else 0.0  # above the columns and below them
    height = max(tall, default=v_gap) - v_gap + 2 * margin + lanes
    return ext, tall, width, height


def place_bands(
    spans: list[tuple[float, float]],
    heights: list[float],
    *,
    v_gap: float,
    margin: float,
    aspect: float | None,
) -> Bands:
    """Where each row goes. `spans` are the rows' (left, right) x extents, `heights` their
    heights (without `v_gap`)."""
    nrows = len(heights)
    tops: list[float] = []
    acc = 0.0
    for h in heights:
        tops.append(acc)
        acc += h + v_gap
    total = acc - v_gap if nrows else 0.0
    out = Bands(work=nrows)
    band_of = [0] * nrows
    _, _, width, height = _size(band_of, spans, heights, v_gap, margin)
    if aspect is not None and nrows > 1 and height > _TALL * width:
        best = (abs(math.log(width / height / aspect)), band_of)
        for columns in range(2, min(nrows, _MAX_COLUMNS) + 1):
            cand = _split(tops, heights, total, columns)
            _, _, w, h = _size(cand, spans, heights, v_gap, margin)
            out.work += 2 * nrows
            score = abs(math.log(w / h / aspect))
            if score < best[0]:
                best = (score, cand)
            if w / h > aspect:  # wider than wanted: more columns only get wider
                break
        band_of = best[1]
    ext, _, width, height = _size(band_of, spans, heights, v_gap, margin)
    ncols = len(ext)
    lane = _LANE if ncols > 1 else 0.0
    out.top = margin + lane / 2
    col_x: list[float] = []
    x = margin
    for lo, hi in ext:
        col_x.append(x)
        x += hi - lo + _COL_GAP
    out.gutter = [col_x[b] + ext[b][1] - ext[b][0] + _COL_GAP / 2 for b in range(ncols)]
    out.foot = [0.0] * ncols
    first_top: dict[int, float] = {}
    for r in range(nrows):
        b = band_of[r]
        first_top.setdefault(b, tops[r])
        out.dx.append(col_x[b] - ext[b][0])
        y0 = margin + lane + tops[r] - first_top[b]
        out.y.append(y0 + heights[r] / 2)
        out.foot[b] = y0 + heights[r] + lane / 2
    out.band_of = band_of
    out.width, out.height, out.columns = width, height, ncols
    return out
