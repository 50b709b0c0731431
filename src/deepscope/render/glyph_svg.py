"""Glyph outlines in SVG, without numpy or Pillow (the graph drawing uses this in the base
install): each glyph a drawing uses is one ``<path>`` in ``<defs>`` (font units, y down),
placed by ``<use>``.

Example:
    >>> from deepscope.render import glyphs
    >>> d = GlyphDefs()
    >>> d.use(glyphs.layout("a", 10).glyphs[0][1], 5, 20, 10)[:26]
    '<use xlink:href="#g61" tra'
"""

from __future__ import annotations

import html
import re

from deepscope.render import glyphs

__all__ = ["GlyphDefs", "clean"]

_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def _f(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def clean(text: str) -> str:
    """`text` escaped for XML, characters XML cannot hold replaced by U+FFFD."""
    return html.escape(_BAD_XML.sub("\ufffd", text), quote=True)


class GlyphDefs:
    """The glyphs a drawing uses, each one ``<path>`` in font units (y down) for ``<use>``."""

    def __init__(self, prefix: str = "g") -> None:
        self.prefix = prefix
        self._paths: dict[str, str] = {}

    def _id(self, g: glyphs.Glyph) -> str:
        gid = f"{self.prefix}{ord(g.char[0]):x}"
        if gid not in self._paths:
            d = []
            for op, a in g.outline:
                pts = [f"{_f(a[i])} {_f(-a[i + 1])}" for i in range(0, len(a), 2)]
                d.append(op + " ".join(pts))
            self._paths[gid] = f'<path id="{gid}" d="{"".join(d)}"/>'
        return gid

    def place(self, g: glyphs.Glyph, x_units: float) -> str:
        """A ``<use>`` of `g` at `x_units` along a baseline already in font units."""
        return f'<use xlink:href="#{self._id(g)}" x="{x_units:.0f}"/>'

    def use(self, g: glyphs.Glyph, x: float, y: float, size: float, vertical: bool = False) -> str:
        """A ``<use>`` of `g` with its origin at (`x`, `y`) set at `size` per em."""
        gid = self._id(g)
        s = size / glyphs.units_per_em()
        turn = " rotate(-90)" if vertical else ""
        return f'<use xlink:href="#{gid}" transform="translate({_f(x)} {_f(y)}){turn} scale({s:.6g})"/>'

    def defs(self) -> str:
        """The ``<defs>`` element holding every glyph used so far."""
        return "<defs>" + "".join(self._paths.values()) + "</defs>"
