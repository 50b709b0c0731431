"""Static figures for papers: one 2-D picture (an attribution overlay, a feature-map grid, a
weights heatmap) written as PNG, SVG or PDF at a chosen `dpi`, its title as vector outlines.

The picture keeps its pixels (`dpi` of them per inch); the title is set in DejaVu Sans at
`title_pt` points, centred above it (the page widens when the title is wider than the
picture). The title's glyphs come from the outline table shipped with the package
(`render.glyphs`): no font file, no fontTools, no matplotlib.

- PNG: Pillow; the title's outlines filled at 4x and downsampled (anti-aliased), the `dpi`
  recorded in the file (``pHYs``).
- SVG: the picture as an embedded PNG (``image-rendering: pixelated``: map cells stay crisp
  squares); the title as one ``<path>`` per glyph (no ``<text>``, so it looks the same
  wherever the file is opened, with no font installed), its string in the figure's
  ``<title>`` and the group's ``aria-label``; the page size is the picture's at `dpi`.
- PDF: written here (no Pillow PDF writer, no matplotlib): one page sized at `dpi`, the
  picture as one Flate-compressed RGB image XObject, the title as filled vector paths
  (``m l c h f``; no font resources, so nothing to embed) and as the document's /Title.

Labels drawn into a picture by its renderer (tile captions, colorbar ticks) are pixels in
every format.

Example:
    >>> save_figure(result.overlay(), "saliency.svg", dpi=300, title="saliency")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from deepscope.render import glyphs

__all__ = ["FORMATS", "TITLE_PT", "Layout", "figure_layout", "pdf_bytes", "save_figure", "svg_text"]

FORMATS = (".png", ".svg", ".pdf")
TITLE_PT = 9.0
"""The title's size in points (a figure caption's usual size)."""
_PAD_EM = 0.35  # white space around the title, in ems
_SUPERSAMPLE = 4


@dataclass(frozen=True)
class Layout:
    """Where things go on the page, in picture pixels (y down)."""

    width: int
    height: int
    image_x: int
    image_y: int
    title: glyphs.Line | None
    title_x: float
    baseline: float


def _image(picture: Any) -> Image.Image:
    if isinstance(picture, Image.Image):
        return picture.convert("RGB")
    arr = np.asarray(picture)
    if arr.dtype != np.uint8:
        raise ValueError(f"a figure is an (H, W, 3) uint8 picture, got dtype {arr.dtype}")
    return Image.fromarray(arr).convert("RGB")


def figure_layout(
    size: tuple[int, int], dpi: float, title: str | None, title_pt: float = TITLE_PT
) -> Layout:
    """The page of a `size` (width, height) picture with `title` above it at `title_pt`."""
    w, h = size
    if not title:
        return Layout(w, h, 0, 0, None, 0.0, 0.0)
    line = glyphs.layout(title, title_pt * dpi / 72.0)
    pad = _PAD_EM * line.size
    band = math.ceil(pad + line.ascent + line.descent + pad)
    width = max(w, math.ceil(line.width + 2 * pad))
    return Layout(width, band + h, (width - w) // 2, band, line,
                  (width - line.width) / 2, pad + line.ascent)  # fmt: skip


def _raster_title(page: Image.Image, lay: Layout) -> None:
    """Fill the title's outlines (even-odd over contours: DejaVu's never overlap) at
    `_SUPERSAMPLE` times the resolution, then average down: anti-aliased black text."""
    line = lay.title
    if line is None:
        return
    k = _SUPERSAMPLE
    band = lay.image_y
    mask = np.zeros((band * k, lay.width * k), dtype=bool)
    for gx, g in line.inked:
        for contour in glyphs.polygons(g, (lay.title_x + gx) * k, lay.baseline * k, line.size * k):
            one = Image.new("1", (lay.width * k, band * k), 0)
            ImageDraw.Draw(one).polygon(contour, fill=1)
            mask ^= np.asarray(one, dtype=bool)
    cover = mask.reshape(band, k, lay.width, k).mean(axis=(1, 3))
    top = np.asarray(page.crop((0, 0, lay.width, band)), dtype=np.float64)
    top = top * (1.0 - cover[..., None])  # black ink over the white band
    page.paste(Image.fromarray(np.round(top).astype(np.uint8)), (0, 0))


def _png_page(img: Image.Image, lay: Layout) -> Image.Image:
    if lay.title is None:
        return img
    page = Image.new("RGB", (lay.width, lay.height), "white")
    page.paste(img, (lay.image_x, lay.image_y))
    _raster_title(page, lay)
    return page


def svg_text(lay: Layout) -> str:
    """The title as one ``<path>`` per inked glyph inside a labelled group ('' if none)."""
    line = lay.title
    if line is None:
        return ""
    label = html.escape(line.text, quote=True)
    paths = "".join(
        f'<path d="{glyphs.svg_path(g, lay.title_x + gx, lay.baseline, line.size)}"/>'
        for gx, g in line.inked
    )
    return f'<g class="figure-title" fill="#000" role="img" aria-label="{label}">{paths}</g>'


def _svg(img: Image.Image, dpi: float, lay: Layout) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    w, h = lay.width, lay.height
    head = f"<title>{html.escape(lay.title.text)}</title>\n" if lay.title else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w / dpi:.4f}in" height="{h / dpi:.4f}in" '
        f'viewBox="0 0 {w} {h}">\n{head}'
        f'<rect width="{w}" height="{h}" fill="#fff"/>\n{svg_text(lay)}\n'
        f'<image x="{lay.image_x}" y="{lay.image_y}" width="{img.width}" height="{img.height}" '
        f'style="image-rendering:pixelated" preserveAspectRatio="none" '
        f'href="data:image/png;base64,{data}"/>\n</svg>\n'
    )


def _pdf_string(text: str) -> bytes:
    """A PDF text string: UTF-16BE with its byte-order mark, as hex."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def _num(v: float) -> str:
    s = f"{v:.4f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def pdf_bytes(img: Image.Image, dpi: float, lay: Layout) -> bytes:
    """One PDF page: `img` as an image XObject, the title as filled vector paths."""
    w, h = lay.width, lay.height
    ops = [f"{_num(72 / dpi)} 0 0 {_num(72 / dpi)} 0 0 cm", f"1 g 0 0 {w} {h} re f",
           f"q {img.width} 0 0 {img.height} {lay.image_x} {h - lay.image_y - img.height} cm "
           "/Im0 Do Q"]  # fmt: skip
    if lay.title is not None:
        ops.append("0 g")
        for gx, g in lay.title.inked:
            path = glyphs.pdf_path(g, lay.title_x + gx, h - lay.baseline, lay.title.size)
            ops.append(path + "\nf")
    content = "\n".join(ops).encode("ascii")
    pixels = zlib.compress(img.tobytes(), 9)
    info = b"<< /Producer (deepscope)"
    if lay.title is not None:
        info += b" /Title " + _pdf_string(lay.title.text)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_num(w * 72 / dpi)} {_num(h * 72 / dpi)}] "
            "/Resources << /XObject << /Im0 5 0 R >> >> /Contents 4 0 R >>"
        ).encode("ascii"),  # fmt: skip
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        (
            f"<< /Type /XObject /Subtype /Image /Width {img.width} /Height {img.height} "
            f"/ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /FlateDecode "
            f"/Length {len(pixels)} >>\nstream\n"
        ).encode("ascii")
        + pixels
        + b"\nendstream",  # fmt: skip
        info + b" >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (len(objects) + 1, len(objects))
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def save_figure(
    picture: Any,
    path: str | Path,
    *,
    dpi: float = 150,
    title: str | None = None,
    title_pt: float = TITLE_PT,
) -> Path:
    """Write `picture` (a PIL image or an (H, W, 3) uint8 array) to `path` as PNG, SVG or
    PDF by its suffix, sized for `dpi`; `title` above it at `title_pt` points, as vector
    outlines in SVG and PDF (see the module's docstring)."""
    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"a figure is written as {', '.join(FORMATS)}, not {out.name!r}")
    if not dpi > 0:
        raise ValueError(f"dpi must be positive, got {dpi}")
    if not title_pt > 0:
        raise ValueError(f"title_pt must be positive, got {title_pt}")
    img = _image(picture)
    lay = figure_layout(img.size, dpi, title, title_pt)
    if suffix == ".svg":
        out.write_text(_svg(img, dpi, lay), encoding="utf-8")
    elif suffix == ".png":
        _png_page(img, lay).save(out, format="PNG", dpi=(dpi, dpi))
    else:
        out.write_bytes(pdf_bytes(img, dpi, lay))
    return out
