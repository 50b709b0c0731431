"""The SVG writer of `render.vector.Scene`: text as glyph outlines (one ``<path>`` per glyph
used, in ``<defs>``, placed by ``<use>``), marks as ``<circle>``/``<rect>`` grouped by
colour, pictures as embedded PNGs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deepscope.render.glyph_svg import GlyphDefs, clean
from deepscope.render.vector import _Line, _Marks, _Picture, _Rect, _Text, escape, png_data_uri

if TYPE_CHECKING:
    from deepscope.render.vector import Scene

__all__ = ["GlyphDefs", "write_svg"]


def _f(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def text_svg(item: _Text, defs: GlyphDefs) -> str:
    """One text item as a labelled group of glyph ``<use>``s."""
    uses = []
    for gx, g in item.line.inked:
        x, y = (item.x, item.y - gx) if item.vertical else (item.x + gx, item.y)
        uses.append(defs.use(g, x, y, item.line.size, item.vertical))
    return (f'<g class="{escape(item.cls)}" fill="{item.fill}" role="img" '
            f'aria-label="{clean(item.line.text)}">{"".join(uses)}</g>')  # fmt: skip


def _marks_svg(item: _Marks) -> str:
    out = [f'<g class="{escape(item.cls)}">']
    r = item.radius
    run: str | None = None
    for (x, y), c in zip(item.xy.tolist(), item.rgb.tolist(), strict=True):
        if not (abs(x) < float("inf") and abs(y) < float("inf")):
            continue
        colour = f"#{c[0]:02x}{c[1]:02x}{c[2]:02x}"
        if colour != run:
            if run is not None:
                out.append("</g>")
            out.append(f'<g fill="{colour}">')
            run = colour
        if item.square:
            out.append(
                f'<rect x="{_f(x - r)}" y="{_f(y - r)}" width="{_f(2 * r)}" height="{_f(2 * r)}"/>'
            )
        else:
            out.append(f'<circle cx="{_f(x)}" cy="{_f(y)}" r="{_f(r)}"/>')
    if run is not None:
        out.append("</g>")
    out.append("</g>")
    return "\n".join(out)


def write_svg(scene: Scene) -> str:
    """`scene` as SVG text, sized in inches at its dpi."""
    defs = GlyphDefs()
    body: list[str] = []
    for item in scene.items:
        if isinstance(item, _Rect):
            stroke = (f' stroke="{item.stroke}" stroke-width="{_f(item.width)}"'
                      if item.stroke else "")  # fmt: skip
            body.append(f'<rect x="{_f(item.x)}" y="{_f(item.y)}" width="{_f(item.w)}" '
                        f'height="{_f(item.h)}" fill="{item.fill or "none"}"{stroke}/>')  # fmt: skip
        elif isinstance(item, _Line):
            pts = " ".join(f"{_f(a)},{_f(b)}" for a, b in item.points)
            body.append(f'<polyline points="{pts}" fill="none" stroke="{item.stroke}" '
                        f'stroke-width="{_f(item.width)}" stroke-linecap="square"/>')  # fmt: skip
        elif isinstance(item, _Marks):
            body.append(_marks_svg(item))
        elif isinstance(item, _Picture):
            style = ' style="image-rendering:pixelated"' if item.pixelated else ""
            body.append(f'<image class="{escape(item.cls)}" x="{_f(item.x)}" y="{_f(item.y)}" '
                        f'width="{_f(item.w)}" height="{_f(item.h)}" preserveAspectRatio="none"'
                        f'{style} xlink:href="{png_data_uri(item.rgb)}"/>')  # fmt: skip
        else:
            body.append(text_svg(item, defs))
    w, h, dpi = scene.width, scene.height, scene.dpi
    head = f"<title>{clean(scene.title)}</title>\n" if scene.title else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        f'width="{w / dpi:.4f}in" height="{h / dpi:.4f}in" viewBox="0 0 {_f(w)} {_f(h)}">\n'
        f"{head}{defs.defs()}\n"
        f'<rect width="{_f(w)}" height="{_f(h)}" fill="#ffffff"/>\n'
        + "\n".join(body)
        + "\n</svg>\n"
    )
