"""Static figures (`deepscope.render.figure`): PNG with its dpi, SVG with the picture's own
pixels embedded and the title as glyph outlines (tests/render/test_figure_text.py checks the
outlines), PDF sized by dpi, from the results that have them."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepscope.render.figure import figure_layout, save_figure


def _picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(20, 30, 3), dtype=np.uint8)


def test_png_keeps_pixels_and_records_dpi(tmp_path: Path) -> None:
    pic = _picture()
    out = save_figure(pic, tmp_path / "f.png", dpi=300)
    img = Image.open(out)
    assert np.array_equal(np.asarray(img.convert("RGB")), pic)
    assert [round(v) for v in img.info["dpi"]] == [300, 300]


def test_svg_embeds_the_exact_pixels_and_title_as_paths(tmp_path: Path) -> None:
    pic = _picture()
    text = save_figure(pic, tmp_path / "f.svg", dpi=200, title="saliency <3> & co").read_text()
    m = re.search(r'href="data:image/png;base64,([^"]+)"', text)
    assert m is not None
    embedded = np.asarray(Image.open(io.BytesIO(base64.b64decode(m.group(1)))).convert("RGB"))
    assert np.array_equal(embedded, pic)
    assert "<text" not in text and text.count("<path ") == len("saliency<3>&co")
    assert "<title>saliency &lt;3&gt; &amp; co</title>" in text  # escaped
    width = figure_layout((30, 20), 200, "saliency <3> & co").width  # the title is wider
    assert f'width="{width / 200:.4f}in"' in text
    assert 'width="0.1500in"' in save_figure(pic, tmp_path / "g.svg", dpi=200).read_text()
    assert "image-rendering:pixelated" in text


def test_pdf_page_is_sized_by_dpi(tmp_path: Path) -> None:
    out = save_figure(_picture(), tmp_path / "f.pdf", dpi=72)
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    box = re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", data)
    assert box is not None and (float(box.group(1)), float(box.group(2))) == (30.0, 20.0)
    out = save_figure(_picture(), tmp_path / "g.pdf", dpi=144)
    box = re.search(rb"/MediaBox \[ ?0 0 ([\d.]+) ([\d.]+) ?\]", out.read_bytes())
    assert box is not None and (float(box.group(1)), float(box.group(2))) == (15.0, 10.0)


def test_bad_suffix_and_dpi_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.png, \.svg, \.pdf"):
        save_figure(_picture(), tmp_path / "f.jpg")
    with pytest.raises(ValueError, match="dpi"):
        save_figure(_picture(), tmp_path / "f.png", dpi=0)


def test_results_save_figures_and_html(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    import deepscope

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 8 * 8, 2),
    )  # fmt: skip
    x = torch.rand(2, 1, 8, 8)
    result = deepscope.attribute(model, x, target=1, method="saliency")
    svg = result.save(tmp_path / "a.svg", dpi=300).read_text()
    assert "<title>saliency · target 1</title>" in svg
    assert result.save(tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    png = Image.open(result.save(tmp_path / "a.png", dpi=96, title="saliency"))
    band = figure_layout(result.overlay().size, 96, "saliency").image_y
    assert png.height == np.asarray(result.overlay()).shape[0] + band  # the title band
    plain = Image.open(result.save(tmp_path / "b.png"))  # a PNG without a title: the overlay
    assert plain.size == result.overlay().size
    pic = deepscope.activations(model, x, layers=["0"]).feature_maps("0")
    svg = pic.save(tmp_path / "maps.svg").read_text()
    m = re.search(r'href="data:image/png;base64,([^"]+)"', svg)
    assert m is not None
    assert np.array_equal(
        np.asarray(Image.open(io.BytesIO(base64.b64decode(m.group(1))))), pic.image()
    )


def test_result_saves_one_self_contained_html_page(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from deepscope.views import embed

    if not (embed.APP_DIR / "embed" / "report.js").exists():
        pytest.skip("the frontend is not built: run `npm run build` in frontend/")
    import deepscope

    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(72, 2)
    )
    result = deepscope.attribute(model, torch.rand(1, 1, 8, 8), target=0, method="saliency")
    page = result.save(tmp_path / "a.html").read_text()
    assert '"panel":"attribution"' in page and '<script type="module">' in page
    assert "data:image/png;base64," in page  # the overlay travels inside
