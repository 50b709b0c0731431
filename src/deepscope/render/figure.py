"""Static figures for papers: one 2-D picture (an attribution overlay, a feature-map grid, a
weights heatmap) written as PNG, SVG or PDF at a chosen `dpi`.

- PNG: Pillow, the pixels as drawn, the `dpi` recorded in the file (``pHYs``).
- SVG: the picture as an embedded PNG (``image-rendering: pixelated``: map cells stay crisp
  squares) and the title as real SVG ``<text>`` with a font-family fallback list (DejaVu
  Sans, Helvetica, Arial, sans-serif), so it stays selectable and editable; the page size is
  the picture's at `dpi`.
- PDF: Pillow's PDF writer (no matplotlib needed): one page, the picture at `dpi`, the
  title drawn into the raster with Pillow's bundled font (vector text would need
  matplotlib, which deepscope does not require).

Labels drawn into a picture by its renderer (tile captions, colorbar ticks) are pixels in
every format.

Example:
    >>> save_figure(result.overlay(), "saliency.svg", dpi=300, title="saliency")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["FONT_FAMILY", "FORMATS", "save_figure"]

FORMATS = (".png", ".svg", ".pdf")
FONT_FAMILY = "DejaVu Sans, Helvetica, Arial, sans-serif"
_TITLE_PX = 22


def _image(picture: Any) -> Image.Image:
    if isinstance(picture, Image.Image):
        return picture.convert("RGB")
    arr = np.asarray(picture)
    if arr.dtype != np.uint8:
        raise ValueError(f"a figure is an (H, W, 3) uint8 picture, got dtype {arr.dtype}")
    return Image.fromarray(arr).convert("RGB")


def _with_title(img: Image.Image, title: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + _TITLE_PX), "white")
    out.paste(img, (0, _TITLE_PX))
    ImageDraw.Draw(out).text((4, 4), title, fill="black", font=ImageFont.load_default())
    return out


def _svg(img: Image.Image, dpi: float, title: str | None) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    top = _TITLE_PX if title else 0
    w, h = img.width, img.height + top
    text = (
        f'<text x="4" y="16" font-family="{FONT_FAMILY}" font-size="14" fill="#000">'
        f"{html.escape(title)}</text>"
        if title
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w / dpi:.4f}in" height="{h / dpi:.4f}in" '
        f'viewBox="0 0 {w} {h}">\n'
        f'<rect width="{w}" height="{h}" fill="#fff"/>\n{text}\n'
        f'<image x="0" y="{top}" width="{img.width}" height="{img.height}" '
        f'style="image-rendering:pixelated" preserveAspectRatio="none" '
        f'href="data:image/png;base64,{data}"/>\n</svg>\n'
    )


def save_figure(
    picture: Any, path: str | Path, *, dpi: float = 150, title: str | None = None
) -> Path:
    """Write `picture` (a PIL image or an (H, W, 3) uint8 array) to `path` as PNG, SVG or
    PDF by its suffix, sized for `dpi`; `title` above it (SVG text, else pixels)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"a figure is written as {', '.join(FORMATS)}, not {out.name!r}")
    if not dpi > 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    img = _image(picture)
    if suffix == ".svg":
        out.write_text(_svg(img, dpi, title), encoding="utf-8")
    elif suffix == ".png":
        (_with_title(img, title) if title else img).save(out, format="PNG", dpi=(dpi, dpi))
    else:
        (_with_title(img, title) if title else img).save(out, format="PDF", resolution=dpi)
    return out
