"""The ``activations`` view kind: `run.log_activations` writes what `deepscope.activations`
captured, and `/api/views/activations` serves back the exact arrays, per layer and item."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient
from torch import nn

import deepscope
from deepscope.analysis.activations import Activations
from deepscope.errors import DeepscopeError
from deepscope.server.app import Settings, create_app
from deepscope.views import envelope
from deepscope.views.kinds.activations import ActivationsView
from deepscope.views.kinds.unit_stats import UnitStatsView
from deepscope.views.schema import validate


def _view(logdir: Path, run: str) -> tuple[TestClient, dict]:  # type: ignore[type-arg]
    client = TestClient(create_app(Settings(logdir=logdir)), base_url="http://127.0.0.1:6100")
    resp = client.get(f"/api/views/activations?run={run}")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    validate(body, ActivationsView)
    return client, body


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(3 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.pool(self.conv(x)).flatten(1))
        return out


def test_arrays_equal_the_captured_tensors_per_layer_and_item(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = _Net()
    x = torch.randn(3, 1, 8, 8)
    acts = deepscope.activations(net, x, ["conv", "pool", "fc"])
    with deepscope.init(logdir=tmp_path, name="cnn") as run:
        run.log_activations("acts", acts, step=4, items=[0, 2])
    client, body = _view(tmp_path, "cnn")
    got = {(i["meta"]["layer"], i["meta"]["index"]): i for i in body["items"]}
    assert sorted(got) == [(n, i) for n in ("conv", "fc", "pool") for i in (0, 2)]
    for (layer, index), item in got.items():
        meta = item["meta"]
        want = acts[layer][index].numpy()
        arr = envelope.decode(client.get(item["parts"]["maps"]["url"]).content)
        assert arr.dtype == np.float32 and item["step"] == 4 and item["tag"] == "acts"
        np.testing.assert_array_equal(arr, want)
        assert meta["shape"] == list(want.shape) and meta["batch"] == 3
        assert meta["layout"] == ("units" if layer == "fc" else "chw")
        assert meta["min"] == pytest.approx(float(want.min()))
        assert meta["max"] == pytest.approx(float(want.max()))
        doc = client.get(item["url"]).json()
        if layer != "fc":
            per = want.reshape(want.shape[0], -1)
            np.testing.assert_allclose(doc["channelMax"], per.max(1), rtol=1e-6)
    assert got[("conv", 0)]["meta"]["module"] == "Conv2d"


def test_sequences_are_tokens_by_units_and_float16_halves_the_bytes(tmp_path: Path) -> None:
    torch.manual_seed(1)
    lstm = nn.LSTM(4, 6, batch_first=True)
    x = torch.randn(2, 5, 4)
    acts = deepscope.activations(lstm, x)
    out = next(n for n in acts.layers if acts[n].shape == (2, 5, 6))
    with deepscope.init(logdir=tmp_path, name="seq") as run:
        run.log_activations("rnn", acts, layers=[out], dtype="float16")
    client, body = _view(tmp_path, "seq")
    assert [i["meta"]["index"] for i in body["items"]] == [0, 1]
    for item in body["items"]:
        assert item["meta"]["layout"] == "tokens_units" and item["meta"]["shape"] == [5, 6]
        raw = client.get(item["parts"]["maps"]["url"]).content
        arr = envelope.decode(raw)
        assert arr.dtype == np.float16
        np.testing.assert_array_equal(
            arr, acts[out][item["meta"]["index"]].numpy().astype(np.float16)
        )


def test_channels_last_outputs_are_stored_channels_first(tmp_path: Path) -> None:
    acts = Activations(["c"], {"c": torch.arange(2 * 4 * 4 * 3.0).reshape(2, 4, 4, 3)},
                                 unit_axes={"c": 3})  # fmt: skip
    with deepscope.init(logdir=tmp_path, name="nhwc") as run:
        run.log_activations("a", acts, items=[1])
    client, body = _view(tmp_path, "nhwc")
    (item,) = body["items"]
    arr = envelope.decode(client.get(item["parts"]["maps"]["url"]).content)
    np.testing.assert_array_equal(arr, acts["c"][1].permute(2, 0, 1).numpy())


def test_bad_layer_and_item_say_what_to_do(tmp_path: Path) -> None:
    acts = deepscope.activations(_Net(), torch.randn(1, 1, 8, 8), ["conv"])
    with deepscope.init(logdir=tmp_path, name="bad") as run:
        with pytest.raises(DeepscopeError, match="close matches: 'conv'"):
            run.log_activations("a", acts, layers=["convv"])
        with pytest.raises(DeepscopeError, match="out of range: 1 items"):
            run.log_activations("a", acts, items=[1])


def test_unit_stats_round_trip_with_crops(tmp_path: Path) -> None:
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4))
    data = [torch.rand(5, 1, 8, 8) for _ in range(3)]
    stats = deepscope.unit_stats(net, data, ["1", "3"], top_k=4, progress=False)
    with deepscope.init(logdir=tmp_path, name="us") as run:
        run.log_unit_stats("units", stats, step=2)
    client = TestClient(create_app(Settings(logdir=tmp_path)), base_url="http://127.0.0.1:6100")
    body = client.get("/api/views/unit_stats?run=us").json()
    validate(body, UnitStatsView)
    items = {i["meta"]["layer"]: i for i in body["items"]}
    assert sorted(items) == ["1", "3"]
    for name, item in items.items():
        table = stats[name]
        doc = client.get(item["url"]).json()
        np.testing.assert_allclose(doc["mean"], table.mean.numpy(), rtol=1e-12)
        np.testing.assert_allclose(doc["zeroFraction"], table.zero_fraction.numpy())
        assert doc["topIndices"] == table.top_indices.tolist()
        assert item["meta"]["items"] == 15 and item["meta"]["topK"] == 4
    assert items["3"]["parts"]["crops"] is None  # a Linear's units have no receptive field
    crops = envelope.decode(client.get(items["1"]["parts"]["crops"]["url"]).content)
    table = stats["1"]
    h, w = table.receptive_field["size"]
    assert crops.shape == (3, 4, 1, h, w) and items["1"]["meta"]["fieldSize"] == [h, w]
    for u in range(3):
        for j in range(4):
            want = table.crops[u][j].numpy()
            cell = crops[u, j]
            rows = np.flatnonzero(np.isfinite(cell[0]).any(1))
            cols = np.flatnonzero(np.isfinite(cell[0]).any(0))
            got = cell[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
            np.testing.assert_array_equal(got, want)
            # the crop is the input at the top box: the index points at the right input
            y0, y1, x0, x1 = table.top_boxes[u, j].tolist()
            item = int(table.top_indices[u, j])
            np.testing.assert_array_equal(want, data[item // 5][item % 5][:, y0:y1, x0:x1].numpy())


def test_crops_cut_by_the_top_left_border_sit_bottom_right() -> None:
    from deepscope.views.kinds.unit_stats import crops_array

    top_left = np.ones((1, 2, 2))
    bottom_right = np.full((1, 2, 2), 2.0)
    boxes = [[(0, 2, 0, 2), (6, 8, 6, 8)]]
    out = crops_array([[top_left, bottom_right]], (3, 3), boxes, (8, 8))
    assert out is not None and out.shape == (1, 2, 1, 3, 3)
    assert np.isnan(out[0, 0, 0, 0]).all() and np.isnan(out[0, 0, 0, :, 0]).all()
    np.testing.assert_array_equal(out[0, 0, 0, 1:, 1:], top_left[0])
    np.testing.assert_array_equal(out[0, 1, 0, :2, :2], bottom_right[0])
    assert np.isnan(out[0, 1, 0, 2]).all()
