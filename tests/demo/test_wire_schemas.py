"""Every dashboard route, fetched over the demo's runs, answers what its wire schema says
(`deepscope.views.wire`, the source of ``frontend/src/wire/types.ts``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from deepscope.server.app import Settings, create_app
from deepscope.views import envelope, wire
from deepscope.views.schema import errors

pytestmark = pytest.mark.slow
RUNS = ("digits-cnn", "digits-cnn-lr20")


class Fetcher:
    """GETs routes, checks each JSON answer against its schema, records the routes hit."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.hit: set[str] = set()
        self.schemas = wire.json_routes()
        self.checked = 0

    def json(self, path: str, query: dict[str, Any] | None = None) -> Any:
        url = path + ("?" + urlencode(query or {}, doseq=True) if query else "")
        response = self.client.get(url)
        assert response.status_code == 200, (url, response.text[:300])
        body = response.json()
        found = errors(body, self.schemas[path])
        assert not found, (url, found)
        self.hit.add(path)
        self.checked += 1
        return body

    def binary(self, url: str, route: str) -> bytes:
        response = self.client.get(url)
        assert response.status_code == 200, (url, response.text[:300])
        assert response.headers["x-content-type-options"] == "nosniff"
        self.hit.add(route)
        return response.content


def test_every_route_over_the_demo_matches_its_schema(demo_logdir: Path) -> None:  # noqa: PLR0915
    app = create_app(Settings(logdir=demo_logdir))
    with TestClient(app, base_url="http://127.0.0.1:6100") as client:
        f = Fetcher(client)
        f.json("/api/health")
        assert {r["name"] for r in f.json("/api/runs")["runs"]} == set(RUNS)
        tags = f.json("/api/tags", {"run": list(RUNS)})["tags"]
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for t in tags:
            by_kind.setdefault(t["kind"], []).append(t)
        for t in by_kind["scalar"]:
            f.json("/api/scalars", {"run": t["run"], "tag": t["tag"]})
        for t in by_kind["histogram"]:
            f.json("/api/histograms", {"run": t["run"], "tag": t["tag"]})
        for t in by_kind["image"]:
            images = f.json("/api/images", {"run": t["run"], "tag": t["tag"]})["images"]
            assert f.binary(images[-1]["url"], "/api/blob")[:4] == b"\x89PNG"
        for t in by_kind["text"]:
            f.json("/api/text", {"run": t["run"], "tag": t["tag"]})
        f.json("/api/events", {"run": list(RUNS)})
        overlays = f.json("/api/overlays", {"run": RUNS[1]})
        assert overlays["badges"] and overlays["series"][-1]["name"] == "nonfinite_step"
        for series in overlays["series"]:
            where = {"run": RUNS[1], "series": series["name"], "step": series["steps"][-1]}
            assert f.json("/api/overlays/values", where)["values"]
            where = {
                "run": RUNS[1],
                "series": series["name"],
                "node": overlays["badges"][0]["nodes"][0],
            }
            points = f.json("/api/overlays/node", where)["points"]
            assert points or series["name"] == "nonfinite_step"  # that node may never be NaN
        run = RUNS[0]
        graphs = f.json("/api/graphs", {"run": run})["graphs"]
        assert graphs
        tag = graphs[0]["tag"]
        f.json("/api/graph", {"run": run, "tag": tag})
        level = f.json("/api/graph/level", {"run": run, "tag": tag, "namespace": ""})
        for node in level["nodes"]:
            if node["kind"] == "group":
                f.json("/api/graph/level", {"run": run, "tag": tag, "namespace": node["namespace"]})
        assert f.json("/api/graph/search", {"run": run, "tag": tag, "q": "conv"})["matches"]
        legacy = f.json("/api/attributions", {"run": run})["items"]
        assert legacy
        kinds = [k["kind"] for k in f.json("/api/views")["kinds"]]
        assert {"activations", "atlas", "attribution", "unit_stats", "weights"} <= set(kinds)
        (atlas,) = f.json("/api/views/atlas", {"run": run})["items"]
        assert atlas["meta"]["layer"] == "features.5" and atlas["parts"]["examples"] is not None
        weights = f.json("/api/views/weights", {"run": run})["items"]
        assert weights and weights[0]["parts"]["heatmap"] is not None
        heat = envelope.decode(
            f.binary(weights[0]["parts"]["heatmap"]["url"], "/api/views/{kind}/array")
        )
        assert list(heat.shape) == weights[0]["meta"]["heatShape"]
        acts = f.json("/api/views/activations", {"run": run})
        assert acts["skipped"] == 0 and len(acts["items"]) == 3 * 4  # 3 conv layers, 4 digits
        for item in acts["items"][::4]:
            arr = envelope.decode(f.binary(item["parts"]["maps"]["url"], "/api/views/{kind}/array"))
            assert list(arr.shape) == item["meta"]["shape"] and item["meta"]["layout"] == "chw"
            assert np.isclose(arr.max(), item["meta"]["max"], rtol=1e-6)
        units = f.json("/api/views/unit_stats", {"run": run})["items"]
        assert [u["meta"]["layer"] for u in units] == ["features.0", "features.2", "features.5"]
        crops = envelope.decode(
            f.binary(units[0]["parts"]["crops"]["url"], "/api/views/{kind}/array")
        )
        assert crops.shape[:3] == (16, 6, 1)  # 16 units x top-6 x one grey channel
        view = f.json("/api/views/attribution", {"run": run})
        assert view["skipped"] == 0 and len(view["items"]) == len(legacy)
        for item in view["items"][:8]:
            heat = item["parts"]["heat"]
            assert heat is not None and item["parts"]["input"] is not None
            arr = envelope.decode(f.binary(heat["url"], "/api/views/{kind}/array"))
            assert arr.dtype == np.float32 and arr.shape == (8, 8)  # the digits are 8x8
            assert np.isclose(arr.min(), item["meta"]["heatMin"], rtol=1e-5)
        _projector_routes(f, client, run)
        missing = client.get("/api/scalars?run=nope&tag=x")
        assert missing.status_code == 404 and not errors(missing.json(), wire.ErrorBody)

    _model_weights_routes(f, demo_logdir)
    _workbench_routes(f, demo_logdir)
    api = {r.path for r in app.routes if isinstance(r, Route) and r.path.startswith("/api/")}
    hit = {re.sub(r"^/api/views/(\w+)$", "/api/views/{kind}", p) for p in f.hit}
    assert api - set(wire.STREAM_ROUTES) == hit, "a route was not fetched and checked"
    assert f.checked > 30


def _model_weights_routes(f: Fetcher, logdir: Path) -> None:
    """``/api/model/weights*`` under ``deepscope view``: the demo CNN's graph and weights."""
    from safetensors.numpy import save_file

    import deepscope
    from deepscope.sources.factory import target_graph
    from deepscope.views.kinds.weights import ModelWeightsSource

    path = logdir.parent / "cnn.safetensors"
    tensors = {"features.0.weight": np.ones((4, 1, 3, 3), np.float32), "fc.weight": np.eye(3)}
    save_file({k: np.asarray(v, np.float32) for k, v in tensors.items()}, str(path))
    source = ModelWeightsSource(deepscope.weights(path))
    app = create_app(Settings(model_graph=target_graph(str(path), []), model_weights=source))
    with TestClient(app, base_url="http://127.0.0.1:6101") as client:
        model = Fetcher(client)
        node = model.json("/api/model/weights", {"node": "features.0.weight"})
        assert node["tensors"][0]["parts"] == ["heatmap", "filters"]
        table = model.json("/api/model/weights/table")
        assert [m["entry"] for m in table["tensors"]] == ["fc.weight", "features.0.weight"]
        arr = envelope.decode(
            model.binary("/api/model/weights/array?name=fc.weight", "/api/model/weights/array")
        )
        assert arr.shape == (3, 3)
    f.hit |= model.hit
    f.checked += model.checked


def _workbench_routes(f: Fetcher, logdir: Path) -> None:
    """``/api/workbench*`` under ``deepscope.explore``: the demo's trained CNN, live."""
    from deepscope.demo import DigitsCNN, load_digits
    from deepscope.server.routes.workbench import attach
    from deepscope.sources import graph
    from deepscope.workbench.inputs import load_weights
    from deepscope.workbench.source import Workbench

    model = DigitsCNN().eval()
    load_weights(model, logdir / "digits-cnn" / "model.pt")
    x = load_digits().x_test[:4]
    bench = Workbench(
        model, x, graph(model, x[:1]), labels=[0, 1, 2, 3], classes=list("0123456789")
    )
    app = create_app(Settings(model_graph=bench.graph))
    attach(app, bench)
    try:
        with TestClient(app, base_url="http://127.0.0.1:6101") as client:
            live = Fetcher(client)
            assert live.json("/api/workbench")["inputKind"] == "image"
            conv = next(n for n, i in bench.nodes.nodes.items() if i.module_type == "Conv2d")
            assert live.json("/api/workbench/tabs", {"node": conv})["gradcam"] is True
            view = live.json("/api/workbench/view", {"view": "gradcam", "node": conv, "input": 1})
            live.json("/api/workbench/jobs")
            png = live.binary(
                f"/api/workbench/part?key={view['key']}&part=image", "/api/workbench/part"
            )
            assert png[:4] == b"\x89PNG"
            assert (
                live.binary("/api/workbench/input?index=1", "/api/workbench/input")[:4]
                == b"\x89PNG"
            )
    finally:
        bench.close()
    f.hit |= live.hit
    f.checked += live.checked


def _projector_routes(f: Fetcher, client: TestClient, run: str) -> None:
    """``/api/projector/*`` over the demo's penultimate-layer embedding (PCA in the worker)."""
    import time

    from deepscope.server.routes.projector import manager

    embeddings = f.json("/api/projector/embeddings", {"run": run})["embeddings"]
    assert [(e["tag"], e["n"], e["dim"]) for e in embeddings][-1] == ("embedding/fc", 359, 64)
    where = {"run": run, "tag": "embedding/fc", "step": embeddings[-1]["step"]}
    f.json("/api/projector/columns", where)
    f.json("/api/projector/neighbors", {**where, "index": 0, "k": 5})
    assert (
        f.binary("/api/projector/sprite?" + urlencode(where), "/api/projector/sprite")[:4]
        == b"\x89PNG"
    )
    body = {**where, "method": "pca", "dims": 2, "params": {}}
    try:
        for _ in range(600):
            answer = client.post("/api/projector/project", json=body).json()
            assert not errors(answer, f.schemas["/api/projector/project"]), answer
            if answer["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        assert answer["state"] == "done", answer
        url = "/api/projector/coords?" + urlencode({"run": run, "key": answer["key"]})
        assert envelope.decode(f.binary(url, "/api/projector/coords")).shape == (359, 2)
        cancel = client.post(
            "/api/projector/cancel", json={"run": run, "key": answer["key"]}
        ).json()
        assert cancel == {"cancelled": False} and not errors(
            cancel, f.schemas["/api/projector/cancel"]
        )
        f.hit |= {"/api/projector/project", "/api/projector/cancel"}
    finally:
        manager(client.app).close()
