"""Projection scatter plots as figures for papers (`Projection.save` -> `render.scatter`,
`render.vector`): the SVG is vector marks and glyph outlines (no ``<text>``), one mark per
point, one legend entry per class, tick labels as paths; the PDF, drawn by poppler, puts each
point's colour where the axes' own tick marks say its coordinates are; past 50k points the
points layer is one picture while the rest stays vector."""

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
from PIL import Image

from deepscope.analysis.projection.result import PALETTE, Projection

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}href"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DPI = 150
SIZE = 600


def _rgb(hexcode: str) -> np.ndarray:
    return np.array([int(hexcode[i : i + 2], 16) for i in (0, 2, 4)])


def _projection(n_per: int = 40) -> Projection:
    """Three classes in separate clusters, plus three lone points far from everything (the
    pixel checks look at those)."""
    rng = np.random.default_rng(0)
    centres = np.array([[-6.0, -2.0], [0.0, 4.0], [7.0, -1.0]])
    pts = [c + rng.normal(scale=0.8, size=(n_per, 2)) for c in centres]
    lone = np.array([[-9.0, 6.0], [3.0, -5.0], [10.0, 5.5]])
    coords = np.concatenate([*pts, lone]).astype(np.float32)
    labels = [n for n in ("ant", "bee", "cat") for _ in range(n_per)] + ["ant", "bee", "cat"]
    return Projection(coords, "tsne", 2, {}, 0, labels=labels)


def _ticks(root: ET.Element) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(pixel, value) of every x tick and every y tick, read from the drawing: each tick
    mark (a two-point ``<polyline>``) is followed by its label (a group whose aria-label is
    the number)."""
    xs: list[tuple[float, float]] = []
    ys: list[tuple[float, float]] = []
    kids = list(root)
    for a, b in zip(kids, kids[1:], strict=False):
        if a.tag != f"{SVG}polyline" or b.get("class") != "tick-label":
            continue
        (x0, y0), (x1, y1) = [tuple(map(float, p.split(","))) for p in a.get("points", "").split()]
        value = float(b.get("aria-label", "").replace("\u2212", "-"))
        (xs if x0 == x1 else ys).append((x0 if x0 == x1 else y0, value))
    return xs, ys


def _axis_map(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """pixel = a * value + b, fitted to the ticks (and checked: the ticks are linear)."""
    px, val = np.array(pairs).T
    a, b = np.polyfit(val, px, 1)
    assert np.abs(a * val + b - px).max() < 0.05, pairs
    return float(a), float(b)


def test_svg_is_vector_marks_and_outlines(tmp_path: Path) -> None:
    p = _projection()
    root = ET.parse(p.save(tmp_path / "p.svg", size=SIZE, dpi=DPI)).getroot()
    assert root.findall(f".//{SVG}text") == []
    points = next(g for g in root.iter(f"{SVG}g") if g.get("class") == "points")
    circles = points.findall(f".//{SVG}circle")
    assert len(circles) == len(p.coords) == 123
    # colour by class: the runs' fills are the palette's first three colours, point counts
    fills: dict[str, int] = {}
    for g in points.findall(f"{SVG}g"):  # runs of one colour, in the points' order
        fills[g.get("fill", "")] = fills.get(g.get("fill", ""), 0) + len(g.findall(f"{SVG}circle"))
    assert sorted(fills.values()) == [41, 41, 41]
    assert set(fills) == {f"#{h}" for h in PALETTE[:3]}
    legend = [g.get("aria-label") for g in root.iter(f"{SVG}g") if g.get("class") == "legend-label"]
    assert legend == ["ant", "bee", "cat"]
    # every piece of text is glyph <use>s of <path>s defined once in <defs>
    defined = {p_.get("id") for p_ in root.findall(f"{SVG}defs/{SVG}path")}
    texts = [g for g in root.iter(f"{SVG}g") if g.get("role") == "img"]
    classes = {g.get("class") for g in texts}
    assert {"title", "tick-label", "axis-label", "legend-label"} <= classes
    for g in texts:
        uses = g.findall(f"{SVG}use")
        inked = [ch for ch in g.get("aria-label", "") if not ch.isspace()]
        assert len(uses) == len(inked) > 0
        assert all(u.get(XLINK, "")[1:] in defined for u in uses)
    labels = [g.get("aria-label") for g in texts if g.get("class") == "axis-label"]
    assert labels == ["t-SNE 1", "t-SNE 2"]
    assert root.findtext(f"{SVG}title") == "t-SNE \u00b7 123 points"
    # equal scale, ticks on round numbers, and a page of SIZE pixels at DPI
    xs, ys = _ticks(root)
    assert len(xs) >= 4 and len(ys) >= 4
    (ax, _), (ay, _) = _axis_map(xs), _axis_map(ys)
    assert ax > 0 > ay and abs(ax + ay) < 1e-3 * ax
    assert root.get("width") == f"{SIZE / DPI:.4f}in"


def _render_pdf(pdf: Path, out: Path) -> np.ndarray:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed")
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(pdf),
                    str(out.with_suffix(""))], check=True, timeout=60)  # fmt: skip
    return np.asarray(Image.open(out).convert("RGB"))


def _check_points_land(page: np.ndarray, p: Projection, root: ET.Element) -> None:
    ax, bx = _axis_map(_ticks(root)[0])
    ay, by = _axis_map(_ticks(root)[1])
    for i, colour in zip((-3, -2, -1), PALETTE[:3], strict=True):  # the three lone points
        x, y = p.coords[i]
        px, py = ax * x + bx, ay * y + by
        centre = page[int(py) - 1 : int(py) + 2, int(px) - 1 : int(px) + 2].reshape(-1, 3)
        assert np.abs(centre.astype(int) - _rgb(colour)).max(axis=1).min() <= 12, (i, centre)
        ring = page[int(py) - 14 : int(py) + 15, int(px) - 14 : int(px) + 15].astype(int)
        ring[4:-4, 4:-4] = 255  # a lone point: nothing else of its colour around it
        assert (np.abs(ring - _rgb(colour)).max(axis=2) <= 12).sum() == 0


def test_pdf_renders_and_points_land_at_their_coordinates(tmp_path: Path) -> None:
    p = _projection()
    root = ET.parse(p.save(tmp_path / "p.svg", size=SIZE, dpi=DPI)).getroot()
    data = p.save(tmp_path / "p.pdf", size=SIZE, dpi=DPI).read_bytes()
    assert b"/Font" not in data and b"/Subtype /Image" not in data  # all vector
    assert re.search(rb"/MediaBox \[0 0 288 288\]", data)  # 600 px at 150 dpi = 4 in
    page = _render_pdf(tmp_path / "p.pdf", tmp_path / "page.png")
    SHOTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(page).save(SHOTS / "figure-projection-pdf.png")
    assert page.shape == (SIZE, SIZE, 3)
    _check_points_land(page, p, root)
    # our own PNG of the same figure agrees (and records the dpi)
    png = Image.open(p.save(tmp_path / "p.png", size=SIZE, dpi=DPI))
    assert png.info["dpi"] == pytest.approx((DPI, DPI), abs=0.05)  # pHYs: pixels per metre
    Image.open(tmp_path / "p.png").save(SHOTS / "figure-projection-png.png")
    _check_points_land(np.asarray(png.convert("RGB")), p, root)


def test_large_projection_rasterises_only_the_points(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 60_000
    coords = rng.normal(size=(n, 2)).astype(np.float32)
    labels = (coords[:, 0] > 0).astype(int)
    p = Projection(coords, "umap", 2, {}, 0, labels=labels.tolist())
    svg = p.save(tmp_path / "big.svg", size=SIZE, dpi=DPI)
    root = ET.parse(svg).getroot()
    swatches = [
        c for g in root.iter(f"{SVG}g") if g.get("class") == "legend-swatch"
        for c in g.iter(f"{SVG}circle")
    ]  # fmt: skip
    assert len(root.findall(f".//{SVG}circle")) == len(swatches) == 2  # no point is a circle
    images = root.findall(f"{SVG}image")
    assert [i.get("class") for i in images] == ["points-raster"]
    assert svg.stat().st_size < 600_000  # 60k <circle>s would be ~2 MB
    ticks = [g for g in root.iter(f"{SVG}g") if g.get("class") == "tick-label"]
    assert len(ticks) >= 8 and all(g.findall(f"{SVG}use") for g in ticks)
    data = p.save(tmp_path / "big.pdf", size=SIZE, dpi=DPI).read_bytes()
    assert data.count(b"/Subtype /Image") == 1
    page = _render_pdf(tmp_path / "big.pdf", tmp_path / "big.png")
    Image.fromarray(page).save(SHOTS / "figure-projection-60k-pdf.png")
    xs, ys = _ticks(root)
    ax, bx = _axis_map(xs)
    ay, by = _axis_map(ys)
    # the dense core of each half: its class colour, where the axes say x = -0.5 / +0.5
    for x, colour in ((-0.5, PALETTE[0]), (0.5, PALETTE[1])):
        px, py = int(ax * x + bx), int(by)
        patch = page[py - 2 : py + 3, px - 2 : px + 3].reshape(-1, 3).astype(int)
        assert np.abs(patch.mean(axis=0) - _rgb(colour)).max() < 25, (x, patch.mean(axis=0))


def test_pdf_content_is_compressed_paths(tmp_path: Path) -> None:
    p = _projection()
    data = p.save(tmp_path / "p.pdf", size=SIZE, dpi=DPI).read_bytes()
    stream = re.search(rb"/Filter /FlateDecode >>\nstream\n(.*?)\nendstream", data, re.S)
    assert stream is not None
    ops = zlib.decompress(stream.group(1)).decode("ascii").split()
    assert ops.count("h") >= 123  # a closed circle per point, then the glyphs' contours
    assert "BT" not in ops and "Tj" not in ops  # no text objects


def test_legend_lists_twenty_classes_then_how_many_more(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    coords = rng.normal(size=(250, 2)).astype(np.float32)
    labels = [f"c{i % 25:02d}" for i in range(250)]
    root = ET.parse(Projection(coords, "pca", 2, {}, 0, labels=labels).save(tmp_path / "p.svg"))
    legend = [g.get("aria-label") for g in root.iter(f"{SVG}g") if g.get("class") == "legend-label"]
    assert legend == [f"c{i:02d}" for i in range(20)] + ["+5 more"]


@pytest.mark.browser
def test_svg_renders_in_chromium_with_points_at_their_coordinates(tmp_path: Path) -> None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium")
    from playwright.sync_api import sync_playwright

    p = _projection()
    svg = p.save(tmp_path / "p.svg", size=SIZE, dpi=DPI)
    html = tmp_path / "p.html"  # one CSS pixel per figure pixel
    html.write_text(f'<body style="margin:0;background:#fff"><img id="f" src="{svg.name}" '
                    f'style="display:block;width:{SIZE}px;height:{SIZE}px"></body>')  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), headless=True,
                                     args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": SIZE, "height": SIZE})
            page.goto(html.as_uri())
            page.wait_for_function("() => document.getElementById('f').complete")
            png = page.screenshot()
        finally:
            browser.close()
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "figure-projection-svg.png").write_bytes(png)
    shot = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    _check_points_land(shot, p, ET.parse(svg).getroot())
