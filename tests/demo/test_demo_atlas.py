"""The demo's neuron atlas: the digits CNN's last conv layer logged as the ``atlas`` view,
its optimised images beating every test digit, and the graph node it is linked from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepscope.store import open as open_store

pytestmark = pytest.mark.slow


def test_demo_logs_the_atlas_of_the_last_conv_layer(demo_logdir: Path) -> None:
    run = open_store(demo_logdir).run("digits-cnn")
    (item,) = run.blobs("atlas")
    meta = item.meta
    assert (meta["layer"], meta["channels"], meta["topK"], meta["measure"]) == (
        "features.5", 32, 4, "mean",
    )  # fmt: skip
    doc = json.loads(run.blob_path(item).read_text())
    scores = np.array([ch["score"] for ch in doc["channels"]])
    best = np.array([ch["values"][0] for ch in doc["channels"]])
    assert (scores > best).mean() >= 0.9  # each image beats the test digits on its channel
    (images,) = run.blobs("atlas_images")
    (examples,) = run.blobs("atlas_examples")
    sprite = np.asarray(Image.open(run.blob_path(images)).convert("RGB"))
    assert sprite.shape == (2 * 8, 16 * 8, 3) and sprite.std() > 10  # 32 pictures, not blank
    assert Image.open(run.blob_path(examples)).size == (16 * 4 * 8, 2 * 8)
    # the Graph tab links the layer's node: its module is a namespace of the logged graph
    graph = json.loads(run.blob_path(run.blobs("graph")[0]).read_text())
    assert any(n.get("namespace") == "features/5" for n in graph["nodes"])
