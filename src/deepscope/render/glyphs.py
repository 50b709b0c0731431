"""Text as vector outlines for static figures: DejaVu Sans glyphs from a table shipped with
the package (`glyphs_dejavu_sans.json`, made by `render.glyphgen`), drawn as SVG ``<path>``
data, PDF path operators, or filled into a Pillow image. No font file, no fontTools and no
matplotlib at run time; the figure needs no font where it is opened.

Coverage: ASCII, Latin-1, Greek and common punctuation, arrows and maths signs
(`glyphgen.CHARS`); another character is drawn as the font's empty box and named in a
warning. No kerning, no ligatures, left-to-right only.

Example:
    >>> line = layout("loss", size=12.0)
    >>> round(line.width, 2), len(line.glyphs)
    (23.18, 4)
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Line", "TABLE", "Glyph", "layout", "pdf_path", "polygons", "svg_path", "units_per_em"]

TABLE = Path(__file__).with_name("glyphs_dejavu_sans.json")

Segment = tuple[str, tuple[float, ...]]
_TOKEN = re.compile(r"([MLQZ])([^MLQZ]*)")


@dataclass(frozen=True)
class Glyph:
    """One character: its advance and outline in font units (y up)."""

    char: str
    advance: int
    outline: tuple[Segment, ...]


@dataclass(frozen=True)
class Line:
    """A laid-out line of text at `size` (pixels or points per em, whatever the caller's
    unit): glyphs (spaces included, their outline empty) at x offsets from the origin."""

    text: str
    size: float
    glyphs: tuple[tuple[float, Glyph], ...]
    width: float
    ascent: float
    """The font's ascender at `size`: room above the baseline for any glyph (accents too)."""
    cap: float
    """The cap height at `size` (the top of capitals above the baseline)."""
    descent: float
    """How far the deepest descender goes below the baseline at `size` (positive)."""

    @property
    def inked(self) -> list[tuple[float, Glyph]]:
        """The glyphs that draw something (not spaces)."""
        return [(x, g) for x, g in self.glyphs if g.outline]


def _parse(d: str) -> tuple[Segment, ...]:
    out: list[Segment] = []
    for op, args in _TOKEN.findall(d):
        out.append((op, tuple(float(v) for v in args.split())))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _font() -> tuple[dict[str, Any], dict[str, Glyph], Glyph]:
    table = json.loads(TABLE.read_text(encoding="utf-8"))
    glyphs = {ch: Glyph(ch, int(adv), _parse(d)) for ch, (adv, d) in table["glyphs"].items()}
    adv, d = table["notdef"]
    return table, glyphs, Glyph("\ufffd", int(adv), _parse(d))


def units_per_em() -> int:
    """The font's units per em (the outlines' coordinate scale)."""
    return int(_font()[0]["unitsPerEm"])


def layout(text: str, size: float) -> Line:
    """Lay `text` out on one line at `size` per em (tabs and newlines become spaces)."""
    table, glyphs, notdef = _font()
    scale = size / table["unitsPerEm"]
    missing = sorted({ch for ch in text if ch not in glyphs and ch not in "\t\n\r"})
    if missing:
        warnings.warn(
            f"figure text {text!r}: no glyph for {''.join(missing)!r} (drawn as a box); "
            "the figure font covers ASCII, Latin-1, Greek and common signs",
            stacklevel=3,
        )
    x = 0.0
    placed: list[tuple[float, Glyph]] = []
    for ch in text:
        g = glyphs[" "] if ch in "\t\n\r" else glyphs.get(ch, notdef)
        placed.append((x, g))
        x += g.advance * scale
    descent = -table["descender"] * scale
    ascent = table["ascender"] * scale
    return Line(text, size, tuple(placed), x, ascent, table["capHeight"] * scale, descent)


def _fmt(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def svg_path(glyph: Glyph, x: float, baseline: float, size: float) -> str:
    """SVG path data of `glyph` with its origin at (`x`, `baseline`) in a y-down space."""
    s = size / _font()[0]["unitsPerEm"]
    out: list[str] = []
    for op, a in glyph.outline:
        pts = [f"{_fmt(x + a[i] * s)} {_fmt(baseline - a[i + 1] * s)}" for i in range(0, len(a), 2)]
        out.append(op + " ".join(pts))
    return "".join(out)


def pdf_path(glyph: Glyph, x: float, baseline: float, size: float) -> str:
    """PDF path operators (``m l c h``; quadratic curves raised to cubic) of `glyph` with its
    origin at (`x`, `baseline`) in PDF's y-up space; the caller fills them (``f``)."""
    s = size / _font()[0]["unitsPerEm"]
    out: list[str] = []
    cur = (0.0, 0.0)
    for op, a in glyph.outline:
        if op == "Z":
            out.append("h")
            continue
        p = [(x + a[i] * s, baseline + a[i + 1] * s) for i in range(0, len(a), 2)]
        if op == "M":
            out.append(f"{_fmt(p[0][0])} {_fmt(p[0][1])} m")
        elif op == "L":
            out.append(f"{_fmt(p[0][0])} {_fmt(p[0][1])} l")
        else:  # Q: the cubic with control points 2/3 of the way to the quadratic one
            (qx, qy), (ex, ey) = p
            c1 = (cur[0] + 2 / 3 * (qx - cur[0]), cur[1] + 2 / 3 * (qy - cur[1]))
            c2 = (ex + 2 / 3 * (qx - ex), ey + 2 / 3 * (qy - ey))
            out.append(" ".join(_fmt(v) for v in (*c1, *c2, ex, ey)) + " c")
        cur = p[-1]
    return "\n".join(out)


def polygons(
    glyph: Glyph, x: float, baseline: float, size: float, steps: int = 8
) -> list[list[tuple[float, float]]]:
    """`glyph`'s contours as polygons (curves flattened) in a y-down space, for raster fills."""
    s = size / _font()[0]["unitsPerEm"]
    contours: list[list[tuple[float, float]]] = []
    cur: list[tuple[float, float]] = []
    for op, a in glyph.outline:
        p = [(x + a[i] * s, baseline - a[i + 1] * s) for i in range(0, len(a), 2)]
        if op == "M":
            cur = [p[0]]
        elif op == "L":
            cur.append(p[0])
        elif op == "Q":
            (x0, y0), (qx, qy), (ex, ey) = cur[-1], p[0], p[1]
            for k in range(1, steps + 1):
                t = k / steps
                u = 1 - t
                cur.append(
                    (
                        u * u * x0 + 2 * u * t * qx + t * t * ex,
                        u * u * y0 + 2 * u * t * qy + t * t * ey,
                    )
                )
        else:
            if len(cur) > 2:
                contours.append(cur)
            cur = []
    return contours
