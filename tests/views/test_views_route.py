"""``/api/views/<kind>`` and its array parts over real runs written through the registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

import deepscope
from deepscope.server.app import Settings, create_app
from deepscope.store import open as open_store
from deepscope.views import envelope, registry, wire
from deepscope.views.kinds.attribution import AttributionView
from deepscope.views.schema import SchemaError, errors, validate

BASE = "http://127.0.0.1:6100"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16  # served by id only; content is not parsed here


def _meta(i: int, **extra: Any) -> dict[str, Any]:
    return {"method": "saliency", "target": 3, "layer": None, "input_index": i, "batch": 2,
            "label": 3, "pred": 3, **extra}  # fmt: skip


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("views")
    rng = np.random.default_rng(0)
    with deepscope.init(logdir=root, name="r") as run:
        for step in (0, 5):
            for i in range(2):
                heat = np.full((4, 6), step * 10 + i, dtype=np.float32)
                registry.write(run, "attribution", "sal", PNG, ext="png", meta=_meta(i),
                               parts={"heat": heat, "input": PNG}, step=step)  # fmt: skip
        big = rng.random((1024, 1024), dtype=np.float32)
        registry.write(run, "attribution", "big", PNG, ext="png", meta=_meta(0),
                       parts={"heat": big}, step=0)  # fmt: skip
        np.save(root / "big.npy", big)
        run.log_blob("attribution", "old", PNG, ext="png", meta={"method": "x"}, step=0)
        run.log_blob("attribution_heat", "bad", b"DSAR\x01\x02\x02\x00" + b"\0" * 9, ext="dsa",
                     meta={"input_index": 0}, step=0)  # fmt: skip
        run.log_image("pic", np.zeros((2, 2, 3), dtype=np.uint8), step=0, dataformats="HWC")
    return root


@pytest.fixture()
def client(logdir: Path) -> Any:
    with TestClient(create_app(Settings(logdir=logdir)), base_url=BASE) as c:
        yield c


def _items(client: TestClient, query: str) -> dict[str, Any]:
    response = client.get("/api/views/attribution?" + query)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    validate(body, AttributionView)
    return body


def test_items_carry_meta_and_their_parts(client: TestClient) -> None:
    body = _items(client, "run=r&tag=sal")
    assert body["kind"] == "attribution" and body["skipped"] == 0
    assert [(i["step"], i["meta"]["input_index"]) for i in body["items"]] == [
        (0, 0), (0, 1), (5, 0), (5, 1)]  # fmt: skip
    for item in body["items"]:
        heat = client.get(item["parts"]["heat"]["url"])
        assert heat.status_code == 200
        assert heat.headers["content-type"] == envelope.CONTENT_TYPE
        assert heat.headers["x-content-type-options"] == "nosniff"
        arr = envelope.decode(heat.content)
        assert arr.shape == (4, 6)
        assert (arr == item["step"] * 10 + item["meta"]["input_index"]).all()
        assert client.get(item["parts"]["input"]["url"]).content == PNG


def test_step_tag_and_limit_select_items(client: TestClient) -> None:
    assert {i["step"] for i in _items(client, "run=r&tag=sal&step=5")["items"]} == {5}
    assert _items(client, "run=r&tag=sal&step=7")["items"] == []
    assert len(_items(client, "run=r&tag=sal&limit=1")["items"]) == 1


def test_items_whose_meta_breaks_the_schema_are_left_out_and_counted(client: TestClient) -> None:
    body = _items(client, "run=r&tag=old")
    assert body["items"] == [] and body["skipped"] == 1


def test_a_1024_square_heatmap_costs_its_bytes_on_the_wire(
    client: TestClient, logdir: Path
) -> None:
    (item,) = _items(client, "run=r&tag=big")["items"]
    response = client.get(item["parts"]["heat"]["url"])
    assert len(response.content) == 4 * 1024 * 1024 + 16 <= 4.1 * 2**20
    np.testing.assert_array_equal(envelope.decode(response.content), np.load(logdir / "big.npy"))


def test_max_size_downsamples_with_the_kinds_hook(client: TestClient, logdir: Path) -> None:
    (item,) = _items(client, "run=r&tag=big")["items"]
    small = envelope.decode(client.get(item["parts"]["heat"]["url"] + "&maxSize=300").content)
    assert small.shape == (256, 256)  # blocks of 4x4 (ceil(1024 / 300))
    big = np.load(logdir / "big.npy")
    np.testing.assert_allclose(small[1, 2], big[4:8, 8:12].mean(), rtol=1e-5)


def test_array_route_serves_only_array_parts_of_the_kind(client: TestClient) -> None:
    body = _items(client, "run=r&tag=sal")
    png_part = body["items"][0]["parts"]["input"]["id"]
    image_id = client.get("/api/images?run=r&tag=pic").json()["images"][0]["id"]
    for blob_id in (png_part, image_id, body["items"][0]["id"], 10**6):
        response = client.get(f"/api/views/attribution/array?run=r&id={blob_id}")
        assert response.status_code == 404, response.text
        assert set(response.json()) == {"error"}
    assert client.get("/api/views/attribution/array?run=r").status_code == 400
    assert client.get("/api/views/nope?run=r").status_code == 404
    assert client.get("/api/views/nope/array?run=r&id=1").status_code == 404


def test_a_stored_array_that_is_not_an_envelope_is_a_typed_422(client: TestClient) -> None:
    bad = next(b for b in open_store(client.app.state.deepscope.settings.logdir).run("r")  # type: ignore[attr-defined]
               .blobs("attribution_heat", "bad"))  # fmt: skip
    response = client.get(f"/api/views/attribution/array?run=r&id={bad.id}")
    assert response.status_code == 422 and response.json()["error"]["type"] == "Envelope"


def test_kinds_lists_each_kind_with_its_panel(client: TestClient) -> None:
    body = client.get("/api/views").json()
    validate(body, wire.ViewKinds)
    assert body["kinds"] == [
        {"kind": "activations", "panel": "activations", "parts": {"maps": "array"}},
        {"kind": "atlas", "panel": "atlas", "parts": {"images": "png", "examples": "png"}},
        {"kind": "attention", "panel": "attention", "parts": {
            "weights": "array", "pooled_max": "array", "pooled_mean": "array",
            "top_values": "array", "top_keys": "array", "image": "png"}},
        {"kind": "attribution", "panel": "attribution", "parts": {"input": "png", "heat": "array"}},
        {"kind": "unit_stats", "panel": "activations", "parts": {"crops": "array"}},
        {"kind": "weights", "panel": "weights", "parts": {"heatmap": "array", "filters": "array"}},
    ]  # fmt: skip


def test_write_checks_the_meta_before_writing_anything(tmp_path: Path) -> None:
    with deepscope.init(logdir=tmp_path, name="w") as run:
        with pytest.raises(SchemaError, match=r"\$\.input_index: expected an integer"):
            registry.write(run, "attribution", "t", PNG, ext="png",
                           meta=_meta(0) | {"input_index": "0"}, parts={"heat": np.ones(2)})  # fmt: skip
        with pytest.raises(SchemaError, match="label"):
            registry.write(run, "attribution", "t", PNG, ext="png", meta=_meta(0, label=None))
        with pytest.raises(Exception, match="no part 'heatmap'"):
            registry.write(run, "attribution", "t", PNG, ext="png", meta=_meta(0),
                           parts={"heatmap": np.ones(2)})  # fmt: skip
        with pytest.raises(Exception, match="not 'svg'"):
            registry.write(run, "attribution", "t", PNG, ext="svg", meta=_meta(0))
    assert open_store(tmp_path).run("w").blobs("attribution") == []
    assert open_store(tmp_path).run("w").blobs("attribution_heat") == []


def test_a_deliberately_wrong_type_in_a_response_fails_its_schema(client: TestClient) -> None:
    body = _items(client, "run=r&tag=sal")
    body["items"][0]["step"] = "0"
    assert errors(body, AttributionView) == ["$.items[0].step: expected an integer, got str '0'"]
    runs = client.get("/api/runs").json()
    validate(runs, wire.Runs)
    runs["runs"][0]["finished"] = "yesterday"
    assert errors(runs, wire.Runs)
    assert json.dumps(body)  # still plain JSON: the schema, not the encoder, caught it
