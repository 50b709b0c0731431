"""A small vector scene for static figures (a scatter plot, a captioned image grid) and its
three writers: SVG, PDF (written here: no matplotlib, no reportlab) and PNG (Pillow).

Scene units are pixels at the scene's `dpi` (y down); a page is `width / dpi` inches wide.
Primitives: rectangles, polylines, marks (one filled circle or square per point, the
points of a scatter plot), pictures (RGB arrays, kept pixel for pixel) and text. Text is
always outlines from the shipped DejaVu Sans table (`render.glyphs`): in SVG each glyph used
is one ``<path>`` in ``<defs>`` placed by ``<use>`` (no ``<text>``, no font needed where the
file is opened; the string is in the group's ``aria-label``); in PDF filled paths (no font
resource); in PNG the same outlines filled at `SUPERSAMPLE` x and averaged down.

Example:
    >>> s = Scene(100, 40, dpi=72)
    >>> _ = s.text(50, 25, "loss", size=12, anchor="middle")
    >>> "<text" in s.svg(), s.svg().count("<use ")
    (False, 4)
"""

from __future__ import annotations

import base64
import html
import io
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageChops, ImageDraw

from deepscope.render import glyphs

__all__ = ["FORMATS", "SUPERSAMPLE", "Scene", "text_width"]

FORMATS = (".png", ".svg", ".pdf")
SUPERSAMPLE = 4
"""PNG: the scene is drawn at this many times its pixels, then averaged down (anti-aliased)."""
_MAX_SUPER_PIXELS = 40_000_000  # a bigger page is supersampled less (memory)
_KAPPA = 0.5522847498  # a quarter circle as one cubic Bezier

Anchor = Literal["start", "middle", "end"]
Point = tuple[float, float]


@dataclass(frozen=True)
class _Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str | None
    stroke: str | None
    width: float


@dataclass(frozen=True)
class _Line:
    points: tuple[Point, ...]
    stroke: str
    width: float


@dataclass(frozen=True)
class _Marks:
    xy: NDArray[np.float64]
    rgb: NDArray[np.uint8]
    radius: float
    square: bool
    cls: str


@dataclass(frozen=True)
class _Picture:
    x: float
    y: float
    w: float
    h: float
    rgb: NDArray[np.uint8]
    pixelated: bool
    cls: str


@dataclass(frozen=True)
class _Text:
    line: glyphs.Line
    x: float  # the origin of the first glyph on the baseline
    y: float
    fill: str
    vertical: bool  # reads bottom to top (a y-axis label)
    cls: str


def text_width(text: str, size: float) -> float:
    """The advance width of `text` set at `size` pixels per em."""
    return glyphs.layout(text, size).width


def _hex(rgb: Sequence[int] | NDArray[np.uint8]) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb[:3])


def _rgb(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _f(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


class Scene:
    """A page `width` x `height` pixels at `dpi`, drawn in the order things are added."""

    def __init__(self, width: float, height: float, dpi: float = 150, title: str | None = None):
        if not dpi > 0:
            raise ValueError(f"dpi must be positive, got {dpi}")
        self.width, self.height, self.dpi, self.title = float(width), float(height), dpi, title
        self.items: list[_Rect | _Line | _Marks | _Picture | _Text] = []

    def pt(self, points: float) -> float:
        """`points` (1/72 inch) in scene pixels."""
        return points * self.dpi / 72.0

    def rect(self, x: float, y: float, w: float, h: float, *, fill: str | None = None,
             stroke: str | None = None, width: float = 1.0) -> None:  # fmt: skip
        """A rectangle, filled and/or outlined (colours as ``#rrggbb``)."""
        self.items.append(_Rect(x, y, w, h, fill, stroke, width))

    def line(self, points: Sequence[Point], *, stroke: str = "#000000", width: float = 1.0) -> None:
        """A polyline through `points`."""
        self.items.append(_Line(tuple((float(a), float(b)) for a, b in points), stroke, width))

    def marks(self, xy: Any, rgb: Any, radius: float, *, square: bool = False,
              cls: str = "marks") -> None:  # fmt: skip
        """One filled circle (or square) of `radius` per row of `xy` (N, 2), coloured by the
        rows of `rgb` (N, 3) uint8; later points are drawn over earlier ones."""
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        cols = np.asarray(rgb, dtype=np.uint8).reshape(-1, 3)
        if len(pts) != len(cols):
            raise ValueError(f"{len(pts)} points but {len(cols)} colours")
        self.items.append(_Marks(pts, cols, float(radius), square, cls))

    def picture(self, x: float, y: float, rgb: Any, *, w: float | None = None,
                h: float | None = None, pixelated: bool = True, cls: str = "picture") -> None:  # fmt: skip
        """An (H, W, 3) uint8 picture with its top-left corner at (`x`, `y`), drawn `w` x `h`
        (default: its own pixels); `pixelated` keeps its pixels crisp squares when scaled."""
        arr = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8)[..., :3])
        ph, pw = arr.shape[:2]
        self.items.append(_Picture(x, y, pw if w is None else w, ph if h is None else h, arr,
                                   pixelated, cls))  # fmt: skip

    def text(self, x: float, y: float, text: str, *, size: float, anchor: Anchor = "start",
             fill: str = "#000000", vertical: bool = False, cls: str = "text") -> glyphs.Line:  # fmt: skip
        """`text` set at `size` pixels per em with its baseline through `y`, starting, centred
        or ending at `x` by `anchor`; `vertical` turns it to read bottom to top, the
        baseline along x = `x` and `y` the anchor point. Returns the laid-out line."""
        line = glyphs.layout(text, size)
        shift = {"start": 0.0, "middle": line.width / 2, "end": line.width}[anchor]
        ox, oy = (x, y + shift) if vertical else (x - shift, y)
        self.items.append(_Text(line, ox, oy, fill, vertical, cls))
        return line

    # -- writers --------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the scene as PNG, SVG or PDF by the suffix of `path`."""
        out = Path(path)
        suffix = out.suffix.lower()
        if suffix == ".svg":
            out.write_text(self.svg(), encoding="utf-8")
        elif suffix == ".pdf":
            out.write_bytes(self.pdf())
        elif suffix == ".png":
            self.raster().save(out, format="PNG", dpi=(self.dpi, self.dpi))
        else:
            raise ValueError(f"a figure is written as {', '.join(FORMATS)}, not {out.name!r}")
        return out

    def svg(self) -> str:
        """The scene as SVG text."""
        from deepscope.render.vector_svg import write_svg

        return write_svg(self)

    def pdf(self) -> bytes:
        """The scene as a one-page PDF."""
        from deepscope.render.vector_pdf import write_pdf

        return write_pdf(self)

    def raster(self) -> Image.Image:
        """The scene as an RGB image of ``ceil(width) x ceil(height)`` pixels."""
        w, h = math.ceil(self.width), math.ceil(self.height)
        k = max(1, min(SUPERSAMPLE, int(math.sqrt(_MAX_SUPER_PIXELS / max(1, w * h)))))
        page = Image.new("RGB", (w * k, h * k), "white")
        draw = ImageDraw.Draw(page)
        for item in self.items:
            if isinstance(item, _Rect):
                box = (item.x * k, item.y * k, (item.x + item.w) * k - 1, (item.y + item.h) * k - 1)
                draw.rectangle(box, fill=item.fill,
                               outline=item.stroke, width=max(1, round(item.width * k)) if item.stroke else 0)  # fmt: skip
            elif isinstance(item, _Line):
                draw.line([(a * k, b * k) for a, b in item.points], fill=item.stroke,
                          width=max(1, round(item.width * k)))  # fmt: skip
            elif isinstance(item, _Marks):
                stamp_marks(page, item.xy * k, item.rgb, item.radius * k, item.square)
            elif isinstance(item, _Picture):
                size = (max(1, round(item.w * k)), max(1, round(item.h * k)))
                img = Image.fromarray(item.rgb)
                mode = Image.Resampling.NEAREST if item.pixelated else Image.Resampling.LANCZOS
                page.paste(img.resize(size, mode), (round(item.x * k), round(item.y * k)))
            else:
                _fill_text(page, item, k)
        if k > 1:
            page = page.resize((w, h), Image.Resampling.BOX)
        return page


def stamp_marks(page: Image.Image, xy: NDArray[np.float64], rgb: NDArray[np.uint8],
                radius: float, square: bool) -> None:  # fmt: skip
    """Paint a disc (or square) of `radius` pixels at each row of `xy` into `page` (RGB), in
    order, with numpy (fast for a million points)."""
    rgb_in = np.asarray(page)
    h, w = rgb_in.shape[:2]
    # one uint32 per pixel: a point's write is one store, not three
    flat = np.zeros(h * w, np.uint32)
    flat[:] = (rgb_in[..., 0].astype(np.uint32) << 16 | rgb_in[..., 1].astype(np.uint32) << 8
               | rgb_in[..., 2]).reshape(-1)  # fmt: skip
    r = max(0.5, radius)
    span = np.arange(-math.ceil(r), math.ceil(r) + 1)
    dy, dx = np.meshgrid(span, span, indexing="ij")
    keep = np.ones_like(dx, dtype=bool) if square else (dx**2 + dy**2 <= r * r + 1e-9)
    ok = np.isfinite(xy).all(axis=1)
    px = np.round(xy[ok, 0]).astype(np.int64)
    py = np.round(xy[ok, 1]).astype(np.int64)
    c = rgb[ok].astype(np.uint32)
    packed = c[:, 0] << 16 | c[:, 1] << 8 | c[:, 2]
    # point by point would keep the stacking order exactly; offset by offset over all points
    # keeps it wherever two marks do not overlap, and is hundreds of times faster
    for oy, ox in zip(dy[keep].tolist(), dx[keep].tolist(), strict=True):
        yy, xx = py + oy, px + ox
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        if inside.all():
            flat[yy * w + xx] = packed
        else:
            flat[(yy * w + xx)[inside]] = packed[inside]
    out = np.stack([(flat >> 16) & 255, (flat >> 8) & 255, flat & 255], axis=1).astype(np.uint8)
    page.paste(Image.fromarray(out.reshape(h, w, 3)))


def glyph_mapper(item: _Text, gx: float) -> Callable[[float, float], Point]:
    """Font units (y up) of the glyph at advance `gx` of `item` -> scene pixels (y down)."""
    s = item.line.size / glyphs.units_per_em()
    x0, y0 = item.x, item.y
    if item.vertical:
        return lambda u, v: (x0 - v * s, y0 - gx - u * s)
    return lambda u, v: (x0 + gx + u * s, y0 - v * s)


def _fill_text(page: Image.Image, item: _Text, k: int) -> None:
    """Fill `item`'s outlines (even-odd over contours: DejaVu's never overlap) into `page`
    drawn at `k` x."""
    contours: list[list[Point]] = []
    for gx, g in item.line.inked:
        m = glyph_mapper(item, gx)
        contours.extend([[(a * k, b * k) for a, b in c] for c in flatten(g, m)])
    if not contours:
        return
    xs = [p[0] for c in contours for p in c]
    ys = [p[1] for c in contours for p in c]
    x0, y0 = math.floor(min(xs)), math.floor(min(ys))
    bw, bh = math.ceil(max(xs)) - x0 + 1, math.ceil(max(ys)) - y0 + 1
    mask = Image.new("1", (bw, bh), 0)
    for c in contours:
        one = Image.new("1", (bw, bh), 0)
        ImageDraw.Draw(one).polygon([(a - x0, b - y0) for a, b in c], fill=1)
        mask = ImageChops.logical_xor(mask, one)
    page.paste(_rgb(item.fill), (x0, y0, x0 + bw, y0 + bh), mask)


def flatten(
    glyph: glyphs.Glyph, m: Callable[[float, float], Point], steps: int = 8
) -> list[list[Point]]:
    """`glyph`'s contours as polygons through the mapping `m` (quadratics flattened)."""
    out: list[list[Point]] = []
    cur: list[tuple[float, float]] = []
    for op, a in glyph.outline:
        if op == "M":
            cur = [(a[0], a[1])]
        elif op == "L":
            cur.append((a[0], a[1]))
        elif op == "Q":
            (x0, y0), (qx, qy), (ex, ey) = cur[-1], (a[0], a[1]), (a[2], a[3])
            for i in range(1, steps + 1):
                t = i / steps
                u = 1 - t
                cur.append((u * u * x0 + 2 * u * t * qx + t * t * ex,
                            u * u * y0 + 2 * u * t * qy + t * t * ey))  # fmt: skip
        elif len(cur) > 2:
            out.append([m(x, y) for x, y in cur])
            cur = []
    return out


def png_data_uri(rgb: NDArray[np.uint8]) -> str:
    """`rgb` as a ``data:image/png;base64,`` URI."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pdf_string(text: str) -> bytes:
    """A PDF text string: UTF-16BE with its byte-order mark, as hex."""
    return b"<FEFF" + text.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def pdf_document(width_pt: float, height_pt: float, content: bytes,
                 images: Sequence[NDArray[np.uint8]], title: str | None) -> bytes:  # fmt: skip
    """A one-page PDF: the page `width_pt` x `height_pt`, its `content` stream (compressed
    here) and `images` as image XObjects /Im0, /Im1, ... (RGB, Flate)."""
    stream = zlib.compress(content, 6)
    xobjects = " ".join(f"/Im{i} {6 + i} 0 R" for i in range(len(images)))
    info = b"<< /Producer (deepscope)"
    if title:
        info += b" /Title " + pdf_string(title)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {_f(width_pt)} {_f(height_pt)}] "
            f"/Resources << /XObject << {xobjects} >> >> /Contents 4 0 R >>"
        ).encode("ascii"),  # fmt: skip
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        info + b" >>",
    ]
    for img in images:
        h, w = img.shape[:2]
        pixels = zlib.compress(np.ascontiguousarray(img[..., :3]).tobytes(), 6)
        objects.append(
            (
                f"<< /Type /XObject /Subtype /Image /Width {w} /Height {h} /ColorSpace /DeviceRGB "
                f"/BitsPerComponent 8 /Filter /FlateDecode /Length {len(pixels)} >>\nstream\n"
            ).encode("ascii")
            + pixels
            + b"\nendstream"  # fmt: skip
        )
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 5 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def escape(text: str) -> str:
    """`text` for an XML attribute or element."""
    return html.escape(text, quote=True)
