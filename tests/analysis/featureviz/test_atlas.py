"""`deepscope.atlas` on two trained CNNs (the demo's digits CNN, and a CIFAR-sized CNN on
coloured gratings and shapes; `conftest.py`): for at least 90% of the last conv layer's
channels the optimised image excites its channel more than any image of the dataset,
different channels give different images, each channel's examples are its top inputs, and
the logged ``atlas`` view reads back through the server pixel for pixel."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from starlette.testclient import TestClient
from torch import nn

import deepscope
from deepscope.analysis.featureviz.atlas import Atlas, _to_rgb
from deepscope.views.kinds.atlas import AtlasView
from deepscope.views.schema import validate

BASE = "http://127.0.0.1:6100"
# measured on the loaded 2-core machine: 48 steps at lr 0.1 beat the dataset on 32/32 digits
# channels (32 steps: 31/32); 64 steps at lr 0.2 on 32/32 of the 32×32 model's (32: 26/32)
SETTINGS = {"digits": {"steps": 48, "lr": 0.1}, "cifar": {"steps": 64, "lr": 0.2}}
LAYERS = {"digits": "features.5", "cifar": "conv3"}


def _batches(x: torch.Tensor, n: int = 128) -> list[torch.Tensor]:
    return [x[i : i + n] for i in range(0, len(x), n)]


def _means(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """(N, C): each input's spatial mean of each channel of `layer`, by a plain hook."""
    kept: list[torch.Tensor] = []
    handle = model.get_submodule(layer).register_forward_hook(lambda _m, _i, o: kept.append(o))
    with torch.no_grad():
        model(x)
    handle.remove()
    return kept[0].mean(dim=(2, 3))


def _corr(images: torch.Tensor) -> float:
    r = np.corrcoef(images.reshape(images.shape[0], -1).double().numpy())
    return float(r[~np.eye(len(r), dtype=bool)].mean())


Case = tuple[nn.Module, torch.Tensor, Atlas, str]


@pytest.fixture(scope="module")
def cases(
    digits_cnn: tuple[nn.Module, torch.Tensor], cifar_cnn: tuple[nn.Module, torch.Tensor]
) -> dict[str, Case]:
    out: dict[str, Case] = {}
    for name, (model, data) in (("digits", digits_cnn), ("cifar", cifar_cnn)):
        layer = LAYERS[name]
        a = deepscope.atlas(model, layer, _batches(data), top_k=4, progress=False, **SETTINGS[name])
        out[name] = (model, data, a, layer)
    return out


@pytest.mark.parametrize("name", ["digits", "cifar"])
def test_optimised_images_beat_every_dataset_image(cases: dict[str, Case], name: str) -> None:
    model, data, a, layer = cases[name]
    assert a.viz.images.shape[0] == 32 and a.viz.images.shape[1:] == data.shape[1:]
    best_data = _means(model, layer, data).max(dim=0).values
    ours = _means(model, layer, a.viz.images).diagonal()
    assert (ours > best_data).float().mean() >= 0.9, ours - best_data
    # the atlas reports the same numbers: its score per image and its best example's value
    assert np.allclose(a.scores, ours.numpy(), rtol=1e-4, atol=1e-5)
    assert np.allclose([v[0] for v in a.values], best_data.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["digits", "cifar"])
def test_channels_give_different_images(cases: dict[str, Case], name: str) -> None:
    _model, _data, a, _layer = cases[name]
    assert _corr(a.viz.images) < 0.5


def test_examples_are_each_channels_top_inputs(cases: dict[str, Case]) -> None:
    model, data, a, layer = cases["digits"]
    means = _means(model, layer, data)  # (N, C)
    for c in (0, 7, 31):
        order = means[:, c].argsort(descending=True)[:4]
        assert len(a.examples[c]) == 4
        for j in range(4):
            assert torch.equal(a.examples[c][j], data[order[j]])
            assert a.values[c][j] == pytest.approx(float(means[order[j], c]), rel=1e-5)


def _png(client: TestClient, run: str, blob_id: int) -> np.ndarray:
    got = client.get(f"/api/blob?run={run}&id={blob_id}")
    assert got.status_code == 200
    return np.asarray(Image.open(io.BytesIO(got.content)).convert("RGB"))


def test_logged_view_reads_back_through_the_server(cases: dict[str, Case], tmp_path: Path) -> None:
    from deepscope.server.app import Settings, create_app

    _model, _data, a, layer = cases["digits"]
    with deepscope.init(logdir=tmp_path, name="atlas") as run:
        run.log_atlas("atlas", a, step=3)
    with TestClient(create_app(Settings(logdir=tmp_path)), base_url=BASE) as client:
        body: dict[str, Any] = client.get("/api/views/atlas?run=atlas").json()
        validate(body, AtlasView)
        assert body["skipped"] == 0 and len(body["items"]) == 1
        item = body["items"][0]
        meta = item["meta"]
        assert (meta["layer"], meta["channels"], meta["topK"], meta["size"]) == (
            layer,
            32,
            4,
            [8, 8],
        )
        assert (meta["columns"], meta["measure"], item["step"]) == (16, "mean", 3)
        doc = json.loads(client.get(f"/api/blob?run=atlas&id={item['id']}").content)
        assert np.allclose([ch["values"] for ch in doc["channels"]], a.values)
        assert [ch["score"] for ch in doc["channels"]] == pytest.approx(a.scores)
        images = _png(client, "atlas", item["parts"]["images"]["id"])
        examples = _png(client, "atlas", item["parts"]["examples"]["id"])
    assert images.shape == (2 * 8, 16 * 8, 3)  # 32 channels, 16 per row
    rgb = a.viz.rgb()
    eh, ew = meta["exampleSize"]
    for c in (0, 17, 31):
        r, q = divmod(c, 16)
        assert np.array_equal(images[r * 8 : r * 8 + 8, q * 8 : q * 8 + 8], rgb[c])
        for j in (0, 3):
            tile = examples[r * eh : (r + 1) * eh, (q * 4 + j) * ew : (q * 4 + j + 1) * ew]
            assert np.array_equal(tile, _to_rgb(a.examples[c][j], None, None))


def test_atlas_without_data_logs_images_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 40, 3, padding=1), nn.ReLU())
    with deepscope.init(logdir=tmp_path, name="bare") as run:
        a = deepscope.atlas(net, "0", None, steps=2, size=8, run=run, progress=False)
    assert a.examples == [[] for _ in range(40)] and len(a.scores) == 40
    images, examples, cols = a.sprites()
    assert examples is None and cols == 16 and images.shape == (3 * 8, 16 * 8, 3)
    assert np.array_equal(images[16:24, 40:48], a.viz.rgb()[37])  # channel 37: row 2, col 5
    assert np.all(images[16:24, 64:] == 255)  # no channel 40..47: blank
    from deepscope.server.app import Settings, create_app

    with TestClient(create_app(Settings(logdir=tmp_path)), base_url=BASE) as client:
        (item,) = client.get("/api/views/atlas?run=bare").json()["items"]
        assert item["meta"]["topK"] == 0 and item["parts"]["examples"] is None
        assert np.array_equal(_png(client, "bare", item["parts"]["images"]["id"]), images)


def test_unknown_measure_is_refused(cifar_cnn: tuple[nn.Module, torch.Tensor]) -> None:
    model, data = cifar_cnn
    with pytest.raises(ValueError, match="'mean' or 'max'"):
        deepscope.atlas(model, "conv3", [data[:4]], steps=1, measure="median", progress=False)  # type: ignore[arg-type]
