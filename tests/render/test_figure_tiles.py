"""Feature-visualisation grids and atlases as figures for papers (`FeatureViz.save`,
`Atlas.save` -> `render.tiles`): the SVG and PDF carry each picture pixel for pixel (one
embedded image per tile), captions, row labels and the title as outlines (no ``<text>``, no
font); poppler draws the tiles where the layout puts them and the title's ink above them."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepscope.analysis.featureviz import Atlas, FeatureViz

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}href"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DPI = 150
N, S = 5, 12  # images of S x S pixels


def _viz() -> FeatureViz:
    """N flat-coloured images with a one-pixel white mark in the corner (orientation)."""
    pixels = torch.zeros(N, 3, S, S)
    for i in range(N):
        pixels[i, i % 3] = 0.2 + 0.15 * i
        pixels[i, :, 0, 0] = 1.0
    labels = [f"layer4.conv:{i}" for i in range(N)]
    return FeatureViz(pixels.clone(), pixels, np.zeros((3, N)), labels)


def _atlas() -> Atlas:
    viz = _viz()
    examples = [[torch.full((3, 8, 6), 0.1 * (c + j + 1)) for j in range(2)] for c in range(N)]
    rows = [np.full((14 + 32 + 4, 200, 3), 255, np.uint8) for _ in range(N)]  # tile 32
    return Atlas("layer4.conv", viz, examples, [[1.0, 0.5]] * N, [2.0] * N, rows)


def _decode(href: str) -> np.ndarray:
    assert href.startswith("data:image/png;base64,")
    return np.asarray(
        Image.open(io.BytesIO(base64.b64decode(href.split(",", 1)[1]))).convert("RGB")
    )


def _texts(root: ET.Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for g in root.iter(f"{SVG}g"):
        if g.get("role") == "img":
            assert g.findall(f"{SVG}use"), g.get("aria-label")
            out.setdefault(g.get("class", ""), []).append(g.get("aria-label", ""))
    return out


def test_featureviz_svg_embeds_each_image_and_outlines_captions(tmp_path: Path) -> None:
    fv = _viz()
    root = ET.parse(fv.save(tmp_path / "fv.svg", dpi=DPI, title="Units of layer4")).getroot()
    assert root.findall(f".//{SVG}text") == []
    images = root.findall(f"{SVG}image")
    assert len(images) == N
    for img, want in zip(images, fv.rgb(), strict=True):
        assert np.array_equal(_decode(img.get(XLINK, "")), want)  # the pixels, unscaled
        assert float(img.get("width", "0")) == 72  # 12 px scaled by 6 to the 64-px minimum
        assert "pixelated" in img.get("style", "")
    texts = _texts(root)
    assert texts["title"] == ["Units of layer4"]
    assert len(texts["caption"]) == N
    for cap, lab in zip(texts["caption"], fv.labels, strict=True):  # cut to the tile's width
        assert cap == lab or (cap.endswith("\u2026") and lab.startswith(cap[:-1]) and len(cap) > 4)
    assert root.get("width", "").endswith("in")
    assert float(root.get("width", "0")[:-2]) * DPI == pytest.approx(
        float(root.get("viewBox", "0 0 0 0").split()[2]), abs=0.01
    )


def _pdf_images(data: bytes) -> list[np.ndarray]:
    out = []
    for m in re.finditer(rb"/Subtype /Image /Width (\d+) /Height (\d+).*?stream\n", data, re.S):
        w, h = int(m.group(1)), int(m.group(2))
        raw = data[m.end() :].split(b"\nendstream", 1)[0]
        out.append(np.frombuffer(zlib.decompress(raw), np.uint8).reshape(h, w, 3))
    return out


def test_atlas_svg_and_pdf(tmp_path: Path) -> None:
    a = _atlas()
    root = ET.parse(a.save(tmp_path / "a.svg", dpi=DPI, title="Atlas")).getroot()
    assert root.findall(f".//{SVG}text") == []
    images = root.findall(f"{SVG}image")
    assert len(images) == N * 3  # per row: the optimised image, then two examples
    assert np.array_equal(_decode(images[0].get(XLINK, "")), a.viz.rgb()[0])
    example = _decode(images[1].get(XLINK, ""))
    assert example.shape == (8, 6, 3) and int(example[0, 0, 0]) == round(0.1 * 255)
    assert _texts(root)["row-label"] == [f"layer4.conv:{c}" for c in range(N)]
    data = a.save(tmp_path / "a.pdf", dpi=DPI, title="Atlas").read_bytes()
    assert b"/Font" not in data
    pics = _pdf_images(data)
    assert len(pics) == N * 3 and np.array_equal(pics[0], a.viz.rgb()[0])
    png = Image.open(a.save(tmp_path / "a.png", dpi=DPI))
    assert png.size[1] == sum(r.shape[0] for r in a.rows)  # the PNG: the atlas picture


def test_featureviz_pdf_renders_tiles_and_title_with_poppler(tmp_path: Path) -> None:
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (Debian poppler-utils) is not installed")
    fv = _viz()
    svg_root = ET.parse(fv.save(tmp_path / "fv.svg", dpi=DPI, title="Units of layer4")).getroot()
    pdf = fv.save(tmp_path / "fv.pdf", dpi=DPI, title="Units of layer4")
    data = pdf.read_bytes()
    assert b"/Font" not in data and len(_pdf_images(data)) == N
    subprocess.run(["pdftoppm", "-r", str(DPI), "-png", "-singlefile", str(pdf),
                    str(tmp_path / "page")], check=True, timeout=60)  # fmt: skip
    page = np.asarray(Image.open(tmp_path / "page.png").convert("RGB"))
    SHOTS.mkdir(parents=True, exist_ok=True)
    Image.fromarray(page).save(SHOTS / "figure-featureviz-pdf.png")
    vb = [float(v) for v in svg_root.get("viewBox", "").split()]
    assert abs(page.shape[1] - vb[2]) <= 1 and abs(page.shape[0] - vb[3]) <= 1
    first_top = None
    for img, want in zip(svg_root.findall(f"{SVG}image"), fv.rgb(), strict=True):
        x, y, w = (float(img.get(k, "0")) for k in ("x", "y", "width"))
        first_top = y if first_top is None else min(first_top, y)
        cell = w / S  # one image pixel in page pixels
        # the centre of the tile is the image's flat colour, its top-left cell the white mark
        cx, cy = int(x + w / 2), int(y + w / 2)
        assert np.abs(page[cy, cx].astype(int) - want[S // 2, S // 2]).max() <= 3
        mx, my = int(x + cell / 2), int(y + cell / 2)
        assert page[my, mx].min() >= 250
    assert first_top is not None
    band = page[: int(first_top) - 20]  # above the first row of captions: the title
    ink = np.nonzero(band.mean(axis=2) < 128)
    assert len(ink[0]) > 100
    assert abs((ink[1].min() + ink[1].max()) / 2 - page.shape[1] / 2) < 3  # centred
