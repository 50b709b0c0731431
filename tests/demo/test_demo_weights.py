"""The demo logs the CNN's weights at the start and the end of training (#15): every tensor
at two steps, with first-layer filters, heatmaps and spectra, and training moved them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient

from deepscope.server.app import Settings, create_app
from deepscope.store import open as open_store
from deepscope.views import envelope

pytestmark = pytest.mark.slow

TENSORS = [
    "features.0.weight", "features.0.bias", "features.2.weight", "features.2.bias",
    "features.5.weight", "features.5.bias", "classifier.1.weight", "classifier.1.bias",
    "classifier.3.weight", "classifier.3.bias",
]  # fmt: skip


def test_demo_logs_weights_at_two_steps(demo_logdir: Path) -> None:
    run = open_store(demo_logdir).run("digits-cnn")
    items = run.blobs("weights", "weights")
    steps = sorted({b.step for b in items})
    assert len(steps) == 2 and steps[0] == 0 and steps[1] > 100
    for step in steps:
        assert [b.meta["entry"] for b in items if b.step == step] == TENSORS
    first = {b.meta["entry"]: b for b in items if b.step == steps[0]}
    last = {b.meta["entry"]: b for b in items if b.step == steps[1]}
    conv = last["features.0.weight"].meta
    assert conv["filters"] == 16 and conv["shape"] == [16, 1, 3, 3]
    assert conv["alpha"] is None  # 16 x 1 per kernel position: no spectrum to fit
    assert last["features.2.weight"].meta["alpha"] is not None
    assert last["classifier.1.weight"].meta["alpha"] is not None
    assert last["classifier.1.weight"].meta["l2"] != first["classifier.1.weight"].meta["l2"]
    doc = json.loads(run.blob_path(last["classifier.1.weight"]).read_text())
    assert doc["esd"]["n"] == 64 and sum(doc["esd"]["counts"]) > 0
    filters = run.blobs("weights_filters", "weights")
    assert {(b.step, b.meta["entry"]) for b in filters} == {(s, "features.0.weight") for s in steps}


def test_demo_weights_are_served(demo_logdir: Path) -> None:
    client = TestClient(create_app(Settings(logdir=demo_logdir)), base_url="http://127.0.0.1:6100")
    body = client.get("/api/views/weights?run=digits-cnn").json()
    assert body["skipped"] == 0 and len(body["items"]) == 2 * len(TENSORS)
    item = next(i for i in body["items"][::-1] if i["meta"]["entry"] == "features.0.weight")
    tiles = envelope.decode(client.get(item["parts"]["filters"]["url"]).content)
    assert tiles.shape == (16, 3, 3, 3) and tiles.dtype == np.uint8
    heat = envelope.decode(client.get(item["parts"]["heatmap"]["url"]).content)
    assert heat.shape == (16, 9) and np.abs(heat).max() == item["meta"]["heatLimit"]
