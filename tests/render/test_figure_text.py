"""Figure titles as vector outlines (`render.figure`, `render.glyphs`): the SVG has no
``<text>`` but one ``<path>`` per glyph; the PDF has no font and no image but the picture's,
and its title is filled paths; and each, drawn by an independent renderer (Chromium for the
SVG, poppler's pdftoppm for the PDF, our own fill for the PNG), puts ink where FreeType puts
it when Pillow draws the same string with the real DejaVu Sans font file."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from deepscope.render import glyphgen, glyphs
from deepscope.render.figure import figure_layout, save_figure

TITLE = "Saliency · λ=0.5, layer3"
DPI = 150
SVG_NS = "{http://www.w3.org/2000/svg}"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def _picture() -> np.ndarray:
    pic = np.zeros((60, 90, 3), dtype=np.uint8)
    pic[..., 0] = np.linspace(0, 255, 90, dtype=np.uint8)[None, :]
    pic[..., 2] = 200
    return pic


def _font_path() -> Path:
    try:
        return glyphgen.find_font()
    except FileNotFoundError:
        pytest.skip("DejaVuSans.ttf (matplotlib's or the system's) is needed as the oracle")


def _reference_ink(size: tuple[int, int]) -> np.ndarray:
    """Where FreeType (Pillow with the real font file) inks the title on the page."""
    lay = figure_layout(size, DPI, TITLE)
    assert lay.title is not None
    font = ImageFont.truetype(str(_font_path()), size=lay.title.size)
    ref = Image.new("L", (lay.width, lay.image_y), 255)
    ImageDraw.Draw(ref).text((lay.title_x, lay.baseline), TITLE, font=font, fill=0, anchor="ls")
    return np.asarray(ref) < 128


def _overlap(band: np.ndarray, ref: np.ndarray) -> float:
    """Intersection over union of the dark pixels of `band` (H, W, 3) and `ref`."""
    ink = band.mean(axis=2) < 128
    assert ink.shape == ref.shape
    return float((ink & ref).sum() / max(1, (ink | ref).sum()))


def test_svg_title_is_one_path_per_glyph_and_no_text(tmp_path: Path) -> None:
    pic = _picture()
    out = save_figure(pic, tmp_path / "f.svg", dpi=DPI, title=TITLE + " <&>")
    root = ET.parse(out).getroot()
    assert root.findall(f".//{SVG_NS}text") == []
    group = root.find(f"{SVG_NS}g")
    assert group is not None and group.get("aria-label") == TITLE + " <&>"
    paths = group.findall(f"{SVG_NS}path")
    inked = [ch for ch in TITLE + " <&>" if not ch.isspace()]
    assert len(paths) == len(inked) == 24
    assert root.findtext(f"{SVG_NS}title") == TITLE + " <&>"
    # every glyph sits in the band above the picture, left to right
    lay = figure_layout(pic.shape[1::-1], DPI, TITLE + " <&>")
    lefts = []
    for p in paths:
        nums = [float(v) for v in re.findall(r"-?[\d.]+", p.get("d", ""))]
        xs, ys = nums[0::2], nums[1::2]
        assert 0 <= min(ys) and max(ys) <= lay.image_y, (min(ys), max(ys))
        assert 0 <= min(xs) and max(xs) <= lay.width
        lefts.append(min(xs))
    assert lefts == sorted(lefts)
    image = root.find(f"{SVG_NS}image")
    assert image is not None and float(image.get("y", "0")) == lay.image_y


def test_png_title_matches_freetype(tmp_path: Path) -> None:
    pic = _picture()
    img = np.asarray(Image.open(save_figure(pic, tmp_path / "f.png", dpi=DPI, title=TITLE)))
    lay = figure_layout(pic.shape[1::-1], DPI, TITLE)
    assert img.shape == (lay.height, lay.width, 3)
    assert np.array_equal(img[lay.image_y :, lay.image_x : lay.image_x + 90], pic)
    iou = _overlap(img[: lay.image_y], _reference_ink(pic.shape[1::-1]))
    assert iou > 0.6, iou  # measured 0.68-0.8; shifted by one pixel: 0.45


def _pdf_objects(data: bytes) -> dict[int, bytes]:
    return {
        int(m.group(1)): m.group(2) for m in re.finditer(rb"(\d+) 0 obj\n(.*?)\nendobj", data, re.S)
    }


def test_pdf_title_is_vector_paths_and_the_only_image_is_the_picture(tmp_path: Path) -> None:
    pic = _picture()
    data = save_figure(pic, tmp_path / "f.pdf", dpi=DPI, title=TITLE).read_bytes()
    objects = _pdf_objects(data)
    images = [o for o in objects.values() if b"/Subtype /Image" in o]
    assert len(images) == 1
    assert b"/Width 90 /Height 60" in images[0]  # the picture alone, no title band in it
    raw = images[0].split(b"stream\n", 1)[1].rsplit(b"\nendstream", 1)[0]
    assert np.array_equal(np.frombuffer(zlib.decompress(raw), np.uint8).reshape(60, 90, 3), pic)
    assert b"/Font" not in data and b"BT" not in data  # no text objects, nothing to embed
    content = next(o for o in objects.values() if o.startswith(b"<< /Length") and b"/Im0 Do" in o)
    ops = content.decode("ascii").split()
    fills = ops.count("f")
    assert fills == 1 + sum(not ch.isspace() for ch in TITLE)  # the white page + one per glyph
    assert ops.count("c") > 50 and ops.count("m") >= fills - 1
    # the title's text is the document's /Title (UTF-16BE)
    hexed = "FEFF" + TITLE.encode("utf-16-be").hex().upper()
    assert f"/Title <{hexed}>".encode() in data
    # a page sized by dpi: the layout's pixels at 72/dpi points each
    lay = figure_layout((90, 60), DPI, TITLE)
    box = re.search(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data)
    assert box is not None
    assert abs(float(box.group(1)) - lay.width * 72 / DPI) < 1e-3
    assert abs(float(box.group(2)) - lay.height * 72 / DPI) < 1e-3


def test_pdf_renders_with_poppler_and_title_ink_matches_freetype(tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed")
    pic = _picture()
    pdf = save_figure(pic, tmp_path / "f.pdf", dpi=DPI, title=TITLE)
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=60)  # fmt: skip
    page = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(page).save(SHOTS / "figure-pdf-title.png")
    lay = figure_layout(pic.shape[1::-1], DPI, TITLE)
    assert page.shape == (lay.height, lay.width, 3)
    iou = _overlap(page[: lay.image_y], _reference_ink(pic.shape[1::-1]))
    assert iou > 0.6, iou  # measured 0.68-0.8; shifted by one pixel: 0.45
    inner = page[lay.image_y + 2 : -2, lay.image_x + 2 : lay.image_x + 88].astype(int)
    assert np.abs(inner - pic[2:-2, 2:-2]).mean() < 8  # the picture, as its pixels


@pytest.mark.browser
def test_svg_renders_in_chromium_and_title_ink_matches_freetype(tmp_path: Path) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    pic = _picture()
    svg = save_figure(pic, tmp_path / "f.svg", dpi=DPI, title=TITLE)
    lay = figure_layout(pic.shape[1::-1], DPI, TITLE)
    page_html = tmp_path / "f.html"  # the figure at one CSS pixel per picture pixel
    page_html.write_text(
        f'<body style="margin:0;background:#fff"><img id="f" src="{svg.name}" '
        f'style="display:block;width:{lay.width}px;height:{lay.height}px"></body>'
    )
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": lay.width, "height": lay.height})
            page.goto(page_html.as_uri())
            page.wait_for_function("() => document.getElementById('f').complete")
            png = page.screenshot()
        finally:
            browser.close()
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "figure-svg-title.png").write_bytes(png)
    shot = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    iou = _overlap(shot[: lay.image_y], _reference_ink(pic.shape[1::-1]))
    assert iou > 0.6, iou  # measured 0.68-0.8; shifted by one pixel: 0.45
    assert np.abs(shot[lay.image_y :, lay.image_x : lay.image_x + 90].astype(int) - pic).max() <= 2


def test_glyph_table_is_what_the_generator_makes_from_the_font() -> None:
    pytest.importorskip("fontTools")
    table = glyphgen.build(_font_path())
    assert glyphgen.dumps(table) == glyphs.TABLE.read_text(encoding="utf-8"), (
        "stale: run `python -m deepscope.render.glyphgen`"
    )


def test_layout_advances_match_the_font_and_unknown_characters_warn() -> None:
    ft = pytest.importorskip("fontTools.ttLib")
    font = ft.TTFont(str(_font_path()))
    hmtx, cmap = font["hmtx"], font.getBestCmap()
    line = glyphs.layout(TITLE, 2048.0)  # one unit per font unit
    xs = [x for x, _ in line.glyphs]
    expected = np.cumsum([0] + [hmtx[cmap[ord(c)]][0] for c in TITLE])
    assert xs == list(expected[:-1]) and line.width == expected[-1]
    with pytest.warns(UserWarning, match="no glyph for '☃'"):
        boxed = glyphs.layout("a☃", 10.0)
    assert len(boxed.inked) == 2  # the box is drawn, not dropped


def test_save_figure_without_title_is_the_picture_alone(tmp_path: Path) -> None:
    pic = _picture()
    root = ET.parse(save_figure(pic, tmp_path / "f.svg", dpi=DPI)).getroot()
    assert root.findall(f".//{SVG_NS}path") == [] and root.find(f"{SVG_NS}title") is None
    data = save_figure(pic, tmp_path / "f.pdf", dpi=72).read_bytes()
    assert b"/MediaBox [0 0 90 60]" in data


def test_grid_save_carries_a_title_as_paths(tmp_path: Path) -> None:
    from deepscope.render.grid import Grid

    grid = Grid(_picture(), [(0, 0, 90, 60)], [(0.0, 1.0)])
    root = ET.parse(grid.save(tmp_path / "g.svg", title="conv1 maps")).getroot()
    assert root.findall(f".//{SVG_NS}text") == []
    assert len(root.findall(f".//{SVG_NS}g/{SVG_NS}path")) == len("conv1maps")
