"""Generate `render/glyphs_dejavu_sans.json`: the glyph outlines that static figures draw
their text with (`render.glyphs`), so a saved SVG or PDF has its text as vector paths and
needs no font installed, and the package needs neither fontTools nor a font file at run time.

Run it when the character set changes (a developer tool: it needs fontTools and DejaVu Sans,
both present in the dev environment through matplotlib)::

    python -m deepscope.render.glyphgen [path/to/DejaVuSans.ttf]

``tests/render/test_figure_text.py`` fails while the checked-in table is stale.

Each glyph is its advance width and its outline in font units (y up): contours of
``M x y``, ``L x y``, ``Q cx cy x y`` (TrueType's quadratic curves, implied on-curve points
made explicit) and ``Z``. Kerning is left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["CHARS", "OUTPUT", "build", "find_font"]

OUTPUT = Path(__file__).with_name("glyphs_dejavu_sans.json")

# ASCII, Latin-1, Greek, and the punctuation, arrows and maths signs titles and axis labels use
CHARS = (
    "".join(chr(c) for c in range(0x20, 0x7F))
    + "".join(chr(c) for c in range(0xA0, 0x100))
    + "".join(chr(c) for c in range(0x391, 0x3AA) if c != 0x3A2)
    + "".join(chr(c) for c in range(0x3B1, 0x3CA))
    + "–—‘’“”•…‰′″→←↑↓↔⇒−∓×÷·√∞∑∏∂∇∈∉∩∪≈≠≡≤≥⊙⊗°µ"
)

_LICENSE = (
    "Outlines from DejaVu Sans (https://dejavu-fonts.github.io/). Fonts are (c) Bitstream "
    "(Bitstream Vera license); DejaVu changes are in the public domain. The Bitstream Vera "
    "license permits redistributing modified copies provided 'Bitstream' and 'Vera' are not "
    "used in their names; this table is such a copy (the outlines only)."
)


def find_font() -> Path:
    """DejaVu Sans from matplotlib's data, else the system's fonts."""
    candidates: list[Path] = []
    try:
        import matplotlib

        candidates.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf")
    except ImportError:
        pass
    candidates.append(Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"))
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError("DejaVuSans.ttf not found: pip install matplotlib or pass its path")


def _num(v: float) -> str:
    r = round(float(v) * 2) / 2  # implied on-curve points fall on halves
    return str(int(r)) if r == int(r) else str(r)


def _outline(ops: list[tuple[str, tuple[Any, ...]]]) -> str:
    from fontTools.pens.basePen import decomposeQuadraticSegment

    out: list[str] = []
    current: tuple[float, float] | None = None
    start: tuple[float, float] | None = None
    for op, args in ops:
        if op == "moveTo":
            (current,) = args
            start = current
            out.append(f"M{_num(current[0])} {_num(current[1])}")
        elif op == "lineTo":
            (current,) = args
            out.append(f"L{_num(current[0])} {_num(current[1])}")
        elif op == "qCurveTo":
            points = list(args)
            if points[-1] is None:  # a closed contour of off-curve points only
                raise ValueError("off-curve-only contours are not in DejaVu Sans' range")
            for (cx, cy), (x, y) in decomposeQuadraticSegment(points):
                out.append(f"Q{_num(cx)} {_num(cy)} {_num(x)} {_num(y)}")
            current = points[-1]
        elif op in ("closePath", "endPath"):
            out.append("Z")
            current = start
        else:
            raise ValueError(f"unexpected outline operation {op} in a TrueType glyph")
    return "".join(out)


def build(font_path: Path | None = None) -> dict[str, Any]:
    """The table for `CHARS` from the font at `font_path` (default `find_font`)."""
    from fontTools.pens.recordingPen import DecomposingRecordingPen
    from fontTools.ttLib import TTFont

    font = TTFont(str(font_path or find_font()))
    cmap = font.getBestCmap()
    glyph_set = font.getGlyphSet()
    hmtx = font["hmtx"]

    def glyph(name: str) -> list[Any]:
        pen = DecomposingRecordingPen(glyph_set)
        glyph_set[name].draw(pen)
        return [hmtx[name][0], _outline(pen.value)]

    glyphs = {}
    for ch in CHARS:
        name = cmap.get(ord(ch))
        if name is None:
            raise ValueError(f"{ch!r} (U+{ord(ch):04X}) is not in the font")
        glyphs[ch] = glyph(name)
    head, hhea = font["head"], font["hhea"]
    return {
        "font": "DejaVu Sans",
        "license": _LICENSE,
        "unitsPerEm": head.unitsPerEm,
        "ascender": hhea.ascent,
        "descender": hhea.descent,
        "capHeight": font["glyf"][cmap[ord("H")]].yMax,
        "notdef": glyph(".notdef"),
        "glyphs": glyphs,
    }


def dumps(table: dict[str, Any]) -> str:
    """The file's text: one glyph a line (reviewable diffs)."""
    glyphs = table["glyphs"]
    head = {k: v for k, v in table.items() if k != "glyphs"}
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "glyphs": {']
    items = [f"{json.dumps(ch, ensure_ascii=False)}: {json.dumps(g)}" for ch, g in glyphs.items()]
    lines.append(",\n".join(items))
    lines.append("}}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    table = build(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    OUTPUT.write_text(dumps(table), encoding="utf-8")
    print(f"wrote {OUTPUT} ({len(table['glyphs'])} glyphs, {OUTPUT.stat().st_size} bytes)")
