"""The worked example: `AttributionResult.log` writes through the ``attribution`` view kind,
and `/api/views/attribution` serves back the exact maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from starlette.testclient import TestClient

import deepscope
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.server.app import Settings, create_app
from deepscope.store import open as open_store
from deepscope.views import envelope
from deepscope.views.kinds.attribution import AttributionView
from deepscope.views.schema import SchemaError, validate


def _view(logdir: Path, run: str) -> tuple[TestClient, dict]:  # type: ignore[type-arg]
    client = TestClient(create_app(Settings(logdir=logdir)), base_url="http://127.0.0.1:6100")
    body = client.get(f"/api/views/attribution?run={run}").json()
    validate(body, AttributionView)
    return client, body


def test_image_maps_come_back_exactly_as_float32_heat(tmp_path: Path) -> None:
    torch.manual_seed(0)
    result = AttributionResult(torch.randn(3, 2, 5, 7), method="saliency", target=[1, 2, 0],
                               inputs=torch.rand(3, 3, 5, 7), meta={"n": 4})  # fmt: skip
    with deepscope.init(logdir=tmp_path, name="img") as run:
        result.log(run, "sal", step=2, labels=[1, 2, 3], predictions=[1, 2, 0])
    client, body = _view(tmp_path, "img")
    assert [i["meta"]["input_index"] for i in body["items"]] == [0, 1, 2]
    heat = result.heat().numpy()
    for item in body["items"]:
        i = item["meta"]["input_index"]
        assert item["meta"]["n"] == 4 and item["meta"]["label"] == i + 1
        got = envelope.decode(client.get(item["parts"]["heat"]["url"]).content)
        np.testing.assert_array_equal(got, heat[i])
        png = client.get(item["parts"]["input"]["url"])
        assert png.content[:4] == b"\x89PNG" and png.headers["content-type"] == "image/png"


def test_token_scores_travel_as_a_1d_array(tmp_path: Path) -> None:
    scores = torch.tensor([[0.5, -1.0, 2.0, 0.0]])
    result = AttributionResult(scores, method="integrated_gradients", target=1,
                               tokens=[["a", "b", "c", "d"]])  # fmt: skip
    with deepscope.init(logdir=tmp_path, name="txt") as run:
        result.log(run, "ig")
    client, body = _view(tmp_path, "txt")
    (item,) = body["items"]
    assert item["format"] == "json" and item["parts"]["input"] is None
    got = envelope.decode(client.get(item["parts"]["heat"]["url"]).content)
    np.testing.assert_array_equal(got, scores[0].numpy())


def test_a_wrongly_typed_meta_key_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    result = AttributionResult(torch.rand(1, 4, 4), method="grad_cam", meta={"sigma": "wide"})
    with deepscope.init(logdir=tmp_path, name="bad") as run:
        with pytest.raises(SchemaError, match=r"\$\.sigma: expected a number"):
            result.log(run, "cam")
    assert open_store(tmp_path).run("bad").blobs("attribution") == []


def test_run_log_attribution_and_log_view_write_through_the_kind(tmp_path: Path) -> None:
    result = AttributionResult(torch.rand(2, 4, 4), method="grad_cam", target=[0, 1])
    with deepscope.init(logdir=tmp_path, name="run") as run:
        run.log_attribution("cam", result, step=1, items=[1], predictions=[0, 1])
        run.log_view("attribution", "hand", b"{}", ext="json",
                     meta={"method": "m", "target": None, "layer": None, "input_index": 0,
                           "batch": 1}, parts={"heat": np.arange(3)})  # fmt: skip
        with pytest.raises(SchemaError):
            run.log_view("attribution", "hand", b"{}", ext="json", meta={"method": "m"})
    client, body = _view(tmp_path, "run")
    items = {i["tag"]: i for i in body["items"]}
    assert sorted((i["tag"], i["meta"]["input_index"]) for i in body["items"]) == [
        ("cam", 1),
        ("hand", 0),
    ]
    assert items["cam"]["meta"]["pred"] == 1
    hand = envelope.decode(client.get(items["hand"]["parts"]["heat"]["url"]).content)
    assert hand.dtype == np.float32 and hand.tolist() == [0.0, 1.0, 2.0]
