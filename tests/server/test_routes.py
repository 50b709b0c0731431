"""Every panel route on a real store: values equal what was logged, bodies are strict JSON."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
from PIL import Image
from server_support import Logged, strict_loads
from starlette.testclient import TestClient


def get_json(client: TestClient, url: str, status: int = 200) -> Any:
    response = client.get(url)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return strict_loads(response.text)


def test_health_reports_logdir_mode(client: TestClient) -> None:
    body = get_json(client, "/api/health")
    assert body == {"ok": True, "version": "0.1.0", "mode": "logdir"}


def test_runs_lists_both_runs_with_config_and_status(client: TestClient) -> None:
    body = get_json(client, "/api/runs")
    assert body["total"] == 2
    by_name = {r["name"]: r for r in body["runs"]}
    assert set(by_name) == {"alpha", "beta"}
    alpha = by_name["alpha"]
    assert alpha["status"] == "finished"
    assert alpha["config"] == {"lr": 0.1, "bad": {"nonfinite": "nan"}}
    assert alpha["finished"] is not None and alpha["created"] <= alpha["finished"]


def test_runs_paginates_and_filters(client: TestClient) -> None:
    page = get_json(client, "/api/runs?offset=1&limit=1")
    assert [r["name"] for r in page["runs"]] == ["beta"] and page["total"] == 2
    filtered = get_json(client, "/api/runs?filter=alp")
    assert [r["name"] for r in filtered["runs"]] == ["alpha"] and filtered["total"] == 1


def test_tags_by_kind_across_runs(client: TestClient, logged: Logged) -> None:
    body = get_json(client, "/api/tags?run=alpha&run=beta&kind=scalar")
    got = {(t["run"], t["tag"]): t for t in body["tags"]}
    assert set(got) == {("alpha", "loss"), ("alpha", "acc"), ("beta", "loss")}
    loss = got[("alpha", "loss")]
    assert (loss["count"], loss["firstStep"], loss["lastStep"]) == (len(logged.losses), 0, 5)
    kinds = {t["kind"] for t in get_json(client, "/api/tags?run=alpha")["tags"]}
    assert {"scalar", "histogram", "image", "text", "graph", "attribution"} <= kinds


def _decode(value: Any) -> float:
    if isinstance(value, dict):
        return {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}[value["nonfinite"]]
    return float(value)


def test_scalars_equal_logged_values_with_nonfinite_markers(
    client: TestClient, logged: Logged
) -> None:
    body = get_json(client, "/api/scalars?run=alpha&tag=loss")
    assert body["run"] == "alpha" and body["tag"] == "loss"
    steps = [p[0] for p in body["points"]]
    values = [_decode(p[2]) for p in body["points"]]
    assert steps == list(range(len(logged.losses)))
    for got, want in zip(values, logged.losses, strict=True):
        assert (math.isnan(got) and math.isnan(want)) or got == want
    raw = [p[2] for p in body["points"]]
    assert {"nonfinite": "nan"} in raw and {"nonfinite": "+inf"} in raw
    assert {"nonfinite": "-inf"} in raw


def test_scalars_step_range(client: TestClient) -> None:
    body = get_json(client, "/api/scalars?run=alpha&tag=acc&startStep=2&endStep=3")
    assert [(p[0], p[2]) for p in body["points"]] == [(2, 0.2), (3, 0.3)]


def test_max_points_is_clamped_not_an_error(client: TestClient) -> None:
    body = get_json(client, f"/api/scalars?run=alpha&tag=loss&maxPoints={10**9}")
    assert len(body["points"]) == 6


@pytest.mark.parametrize(
    "query",
    ["/api/runs?limit=abc", "/api/runs?limit=-1", "/api/runs?offset=1.5",
     "/api/scalars?run=alpha&tag=loss&maxPoints=abc", "/api/scalars?run=alpha",
     "/api/scalars?run=alpha&tag=loss&maxPoints=0", "/api/events?run=alpha&limit=-1",
     "/api/graph/search?run=alpha&q=x&limit=1e3", "/api/graph?model=maybe",
     "/api/scalars?run=alpha&tag=loss&startStep=-99999999999999999999",
     "/api/scalars?run=alpha&tag=loss&endStep=99999999999999999999",
     "/api/blob?run=alpha&id=%EF%BC%91"],
)  # fmt: skip
def test_bad_parameters_are_400_with_a_typed_error(client: TestClient, query: str) -> None:
    body = get_json(client, query, status=400)
    assert body["error"]["type"] == "BadRequest" and body["error"]["message"]


def test_unknown_run_and_tag(client: TestClient) -> None:
    body = get_json(client, "/api/scalars?run=nope&tag=loss", status=404)
    assert body["error"]["type"] == "NotFound"
    assert get_json(client, "/api/scalars?run=alpha&tag=nope")["points"] == []


def test_histograms_keep_counts_and_nonfinite(client: TestClient) -> None:
    body = get_json(client, "/api/histograms?run=alpha&tag=weights&maxPoints=100000")
    first, second = body["histograms"]
    assert (first["step"], second["step"]) == (0, 1)
    assert (first["count"], first["nNan"], first["nPosinf"], first["nNeginf"]) == (3, 1, 1, 0)
    assert sum(first["counts"]) == 3 and len(first["edges"]) == len(first["counts"]) + 1
    assert (first["min"], first["max"], first["sum"]) == (0.0, 2.0, 3.0)
    assert second["count"] == 100 and sum(second["counts"]) == 100
    assert second["sumSq"] == float(sum(i * i for i in range(100)))


def test_images_list_and_blob_bytes_decode_to_the_logged_image(
    client: TestClient, logged: Logged
) -> None:
    body = get_json(client, "/api/images?run=alpha&tag=sample")
    (item,) = body["images"]
    assert item["step"] == 0 and item["meta"]["width"] == 6 and item["meta"]["height"] == 5
    response = client.get(item["url"])
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-content-type-options"] == "nosniff"
    pixels = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    np.testing.assert_array_equal(pixels, logged.image)


def test_blob_of_unknown_id_or_missing_id(client: TestClient) -> None:
    assert get_json(client, "/api/blob?run=alpha&id=999999", status=404)["error"]
    assert get_json(client, "/api/blob?run=alpha", status=400)["error"]


def test_text_returns_the_raw_strings(client: TestClient, logged: Logged) -> None:
    body = get_json(client, "/api/text?run=alpha&tag=notes")
    assert [(t["step"], t["text"]) for t in body["texts"]] == list(enumerate(logged.texts))


def test_events(client: TestClient) -> None:
    body = get_json(client, "/api/events?run=alpha&run=beta")
    (event,) = body["events"]
    assert event["run"] == "alpha" and event["kind"] == "nan" and event["severity"] == "error"
    assert (event["layer"], event["step"], event["message"]) == ("head/fc", 2, "loss became NaN")
    assert get_json(client, "/api/events?run=alpha&limit=0")["events"] == []


def test_attributions_list_and_blob(client: TestClient) -> None:
    body = get_json(client, "/api/attributions?run=alpha&tag=saliency")
    (item,) = body["items"]
    assert item["step"] == 3 and item["meta"] == {"method": "saliency"}
    assert client.get(item["url"]).content[:8] == b"\x89PNG\r\n\x1a\n"


def test_graph_json_and_graph_list(client: TestClient) -> None:
    graphs = get_json(client, "/api/graphs?run=alpha")["graphs"]
    assert [(g["tag"], g["step"]) for g in graphs][0][0] == "model"
    body = get_json(client, "/api/graph?run=alpha")
    assert body["schemaVersion"] == 1
    assert [n["id"] for n in body["nodes"]] == ["x", "conv", "relu", "fc", "out"]
    assert body["overlays"]["grad_norm"]["relu"] == {"nonfinite": "nan"}
    assert get_json(client, "/api/graph?run=beta", status=404)["error"]["type"] == "NotFound"


def test_graph_level_top_and_group(client: TestClient) -> None:
    top = get_json(client, "/api/graph/level?run=alpha&tag=model")
    ids = [n["id"] for n in top["nodes"]]
    assert ids == ["ns:features", "ns:head", "x", "out"]
    edges = {(e["src"], e["dst"]) for e in top["edges"]}
    assert edges == {("x", "ns:features"), ("ns:features", "ns:head"), ("ns:head", "out")}
    features = top["nodes"][0]
    assert features["kind"] == "group" and features["moduleType"] == "Sequential"
    assert features["childCount"] == 2 and features["macs"] == 10
    assert features["overlays"]["grad_norm"] == {"nonfinite": "nan"}
    assert top["inputs"] == ["x"] and top["outputs"] == ["out"]
    assert top["overlayNames"] == ["grad_norm"] and top["truncated"] is False
    head = get_json(client, "/api/graph/level?run=alpha&namespace=head")
    assert [n["id"] for n in head["nodes"]] == ["ns:head/fc"]
    fc = get_json(client, "/api/graph/level?run=alpha&namespace=head/fc")["nodes"][0]
    assert fc["kind"] == "op" and fc["params"] == 8 and fc["overlays"] == {"grad_norm": 0.25}
    assert fc["paramRefs"][0]["name"] == "head.fc.weight"
    missing = get_json(client, "/api/graph/level?run=alpha&namespace=nowhere", status=404)
    assert missing["error"]["type"] == "NotFound"


def test_graph_search(client: TestClient) -> None:
    body = get_json(client, "/api/graph/search?run=alpha&q=CONV")
    assert [m["id"] for m in body["matches"]] == ["ns:features/conv", "conv"]
    assert get_json(client, "/api/graph/search?run=alpha&q=linear")["matches"][0]["id"] == "fc"


def test_model_flag_without_a_served_model_is_400(client: TestClient) -> None:
    assert get_json(client, "/api/graph?model=1", status=400)["error"]["type"] == "BadRequest"


def test_unknown_api_path_is_json_404(client: TestClient) -> None:
    assert get_json(client, "/api/nothing", status=404)["error"]["type"] == "NotFound"


def test_unexpected_errors_are_a_generic_500(client: TestClient, logged: Logged) -> None:
    state = client.app.state.deepscope  # type: ignore[attr-defined]

    def broken() -> Any:
        raise RuntimeError("secret detail /home/user/x.py line 3")

    state.store = broken
    response = client.get("/api/runs")
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    assert strict_loads(response.text)["error"]["type"] == "Internal"
    assert response.headers["x-content-type-options"] == "nosniff"
