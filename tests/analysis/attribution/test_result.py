"""AttributionResult: normalisation, overlays, colormaps, save/show and logging into a run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import deepscope
from deepscope.analysis.attribution import AttributionResult, GradCAM, attribute
from deepscope.render.colormap import apply_colormap, lut
from deepscope.render.overlay import overlay


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(6, 2),
    ).eval()


def test_normalized_is_per_image_min_max() -> None:
    maps = torch.stack([torch.linspace(2, 4, 16).reshape(4, 4), torch.zeros(4, 4)])
    r = AttributionResult(maps, method="grad_cam")
    assert r.normalized[0].min() == 0 and r.normalized[0].max() == pytest.approx(1)
    assert (r.normalized[1] == 0).all()  # a flat map stays zero, no NaN


def test_input_shaped_maps_reduce_channels_by_absolute_sum() -> None:
    a = torch.zeros(1, 3, 2, 2)
    a[0, 0, 0, 0], a[0, 1, 0, 0], a[0, 2, 1, 1] = -2.0, 1.0, 1.5
    r = AttributionResult(a, method="saliency")
    assert torch.equal(r.heat()[0], torch.tensor([[3.0, 0.0], [0.0, 1.5]]))


@pytest.mark.parametrize("name", ["jet", "viridis", "inferno"])
def test_colormaps_match_matplotlib(name: str) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    reference = matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255
    assert np.abs(lut(name).astype(float) - reference).max() <= 5
    assert apply_colormap(np.array([np.nan, 2.0]), name).tolist() == [
        lut(name)[0].tolist(),
        lut(name)[255].tolist(),
    ]


def test_overlay_blends_heat_over_the_image() -> None:
    image = np.full((4, 6, 3), 100, np.uint8)
    heat = np.zeros((2, 3))
    heat[0, 0] = 1.0
    out = np.asarray(overlay(image, heat, cmap="gray", alpha=0.5))
    assert out.shape == (4, 6, 3)
    assert out[0, 0, 0] > out[3, 5, 0] == 50  # hot corner brighter; cold = half the image
    assert np.array_equal(np.asarray(overlay(image, heat, alpha=0.0)), image)
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, heat, alpha=2)


def test_result_overlay_uses_the_explained_input_and_saves_png(tmp_path: Path) -> None:
    x = torch.rand(2, 3, 10, 12)
    r = attribute(_net(), x, 1, method="grad_cam")
    img = r.overlay(cmap="viridis", index=1)
    assert isinstance(img, Image.Image) and img.size == (12, 10)
    path = r.save(tmp_path / "cam.png", index=1)
    assert Image.open(path).size == (12, 10)
    assert r.show() is not None  # no IPython kernel: the image comes back


def test_token_results_save_json(tmp_path: Path) -> None:
    r = AttributionResult(
        torch.tensor([[0.1, 2.0, -0.5]]), method="gradient_x_input", tokens=[["a", "b", "c"]]
    )
    assert r.token_scores() == [("a", pytest.approx(0.1)), ("b", 2.0), ("c", -0.5)]
    doc = json.loads(r.save(tmp_path / "t.json").read_text())
    assert doc["tokens"] == ["a", "b", "c"] and doc["scores"][1] == 2.0
    with pytest.raises(ValueError, match="per-token"):
        r.overlay()


def test_log_into_a_real_run(tmp_path: Path) -> None:
    x = torch.rand(2, 3, 8, 8)
    result = GradCAM(_net()).attribute(x, [0, 1])
    with deepscope.init(logdir=str(tmp_path), name="attr") as run:
        result.log(run, "cam", step=3, index=1)
        run.log_attribution("cam", result, step=4)
    reader = deepscope.store.open(str(tmp_path)).run("attr")
    blobs = reader.blobs("attribution", "cam")
    assert [b.step for b in blobs] == [3, 4, 4]  # log_attribution logs every input
    meta = blobs[0].meta
    assert meta["method"] == "grad_cam" and meta["target"] == 1 and meta["input_index"] == 1
    assert meta["layer"] == "1"
    png = reader.blob_path(blobs[0])
    assert Image.open(png).size == (8, 8)
