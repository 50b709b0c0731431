"""The PDF writer of `render.vector.Scene`: one page, vector paths for everything but the
pictures (image XObjects); text as filled glyph outlines (no font resource)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from deepscope.render.vector import (
    _KAPPA,
    _Line,
    _Marks,
    _Picture,
    _Rect,
    _rgb,
    _Text,
    glyph_mapper,
    pdf_document,
)

if TYPE_CHECKING:
    from deepscope.render.vector import Scene

__all__ = ["write_pdf"]


def _f(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _colour(hexes: str, op: str) -> str:
    r, g, b = _rgb(hexes)
    return f"{_f(r / 255)} {_f(g / 255)} {_f(b / 255)} {op}"


def _circle(x: float, y: float, r: float) -> str:
    k = _KAPPA * r
    return (f"{_f(x + r)} {_f(y)} m "
            f"{_f(x + r)} {_f(y + k)} {_f(x + k)} {_f(y + r)} {_f(x)} {_f(y + r)} c "
            f"{_f(x - k)} {_f(y + r)} {_f(x - r)} {_f(y + k)} {_f(x - r)} {_f(y)} c "
            f"{_f(x - r)} {_f(y - k)} {_f(x - k)} {_f(y - r)} {_f(x)} {_f(y - r)} c "
            f"{_f(x + k)} {_f(y - r)} {_f(x + r)} {_f(y - k)} {_f(x + r)} {_f(y)} c h")  # fmt: skip


def _marks(item: _Marks) -> list[str]:
    ops: list[str] = []
    r = item.radius
    run: tuple[int, ...] | None = None
    for (x, y), c in zip(item.xy.tolist(), item.rgb.tolist(), strict=True):
        if not (abs(x) < float("inf") and abs(y) < float("inf")):
            continue
        if tuple(c) != run:
            if run is not None:
                ops.append("f")
            run = tuple(c)
            ops.append(f"{_f(c[0] / 255)} {_f(c[1] / 255)} {_f(c[2] / 255)} rg")
        if item.square:
            ops.append(f"{_f(x - r)} {_f(y - r)} {_f(2 * r)} {_f(2 * r)} re")
        else:
            ops.append(_circle(x, y, r))
    if run is not None:
        ops.append("f")
    return ops


def _text(item: _Text) -> list[str]:
    ops = [_colour(item.fill, "rg")]
    for gx, g in item.line.inked:
        m = glyph_mapper(item, gx)
        cur = (0.0, 0.0)
        for op, a in g.outline:
            if op == "Z":
                ops.append("h")
                continue
            if op == "Q":  # raised to a cubic: control points 2/3 of the way to the quadratic's
                q, e = m(a[0], a[1]), m(a[2], a[3])
                c1 = (cur[0] + 2 / 3 * (q[0] - cur[0]), cur[1] + 2 / 3 * (q[1] - cur[1]))
                c2 = (e[0] + 2 / 3 * (q[0] - e[0]), e[1] + 2 / 3 * (q[1] - e[1]))
                ops.append(" ".join(_f(v) for v in (*c1, *c2, *e)) + " c")
                cur = e
            else:
                cur = m(a[0], a[1])
                ops.append(f"{_f(cur[0])} {_f(cur[1])} {'m' if op == 'M' else 'l'}")
    ops.append("f")
    return ops


def write_pdf(scene: Scene) -> bytes:
    """`scene` as a one-page PDF sized in points at its dpi (scene pixels are drawn through a
    y-flipping matrix, so every coordinate below is a scene pixel)."""
    s = 72.0 / scene.dpi
    w, h = scene.width, scene.height
    ops = [f"{s:.6g} 0 0 {-s:.6g} 0 {_f(h * s)} cm", f"1 g 0 0 {_f(w)} {_f(h)} re f"]
    images: list[NDArray[np.uint8]] = []
    for item in scene.items:
        if isinstance(item, _Rect):
            box = f"{_f(item.x)} {_f(item.y)} {_f(item.w)} {_f(item.h)} re"
            if item.fill:
                ops.append(f"{_colour(item.fill, 'rg')} {box} f")
            if item.stroke:
                ops.append(f"{_colour(item.stroke, 'RG')} {_f(item.width)} w 0 J {box} S")
        elif isinstance(item, _Line):
            pts = " ".join(f"{_f(a)} {_f(b)} {'m' if i == 0 else 'l'}"
                           for i, (a, b) in enumerate(item.points))  # fmt: skip
            ops.append(f"{_colour(item.stroke, 'RG')} {_f(item.width)} w 2 J {pts} S")
        elif isinstance(item, _Marks):
            ops.extend(_marks(item))
        elif isinstance(item, _Picture):
            ops.append(f"q {_f(item.w)} 0 0 {_f(-item.h)} {_f(item.x)} {_f(item.y + item.h)} cm "
                       f"/Im{len(images)} Do Q")  # fmt: skip
            images.append(item.rgb)
        else:
            ops.extend(_text(item))
    content = "\n".join(ops).encode("ascii")
    return pdf_document(w * s, h * s, content, images, scene.title)
