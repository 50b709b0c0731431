"""The demo logs its tiny transformer's attention (`deepscope.demo.attention`): the
Attention tab of the healthy run shows, at the last checkpoint, a head whose every query
attends most to the mirrored key (it learned to reverse), and the untrained one beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from starlette.testclient import TestClient

from deepscope.demo.attention import CHECKPOINTS
from deepscope.server.app import Settings, create_app
from deepscope.views import envelope
from deepscope.views.kinds.attention import AttentionView
from deepscope.views.schema import validate


def _reverse_accuracy(weights: np.ndarray) -> list[float]:
    n = weights.shape[-1]
    mirrored = np.arange(n - 1, -1, -1)
    return [float((head.argmax(-1) == mirrored).mean()) for head in weights]


def test_the_demo_transformer_learned_heads_are_in_the_attention_view(demo_logdir: Path) -> None:
    client = TestClient(create_app(Settings(logdir=demo_logdir)), base_url="http://127.0.0.1:6100")
    body = client.get("/api/views/attention?run=digits-cnn").json()
    validate(body, AttentionView)
    assert body["skipped"] == 0
    by_step = {
        i["step"]: i
        for i in body["items"]
        if i["tag"] == "attention/reverse" and i["meta"]["view"] == "layer"
    }
    assert sorted(by_step) == list(CHECKPOINTS)
    acc = {}
    for step, item in by_step.items():
        assert item["meta"]["path"] == "sdpa" and item["meta"]["shape"] == [2, 8, 8]
        tokens = client.get(item["url"]).json()["tokens"]
        assert len(tokens) == 8 and all(t.isalpha() for t in tokens)
        weights = envelope.decode(client.get(item["parts"]["weights"]["url"]).content)
        acc[step] = max(_reverse_accuracy(weights))
    assert acc[CHECKPOINTS[-1]] >= 0.9, acc  # one head reads input 7-i for output i
    assert acc[CHECKPOINTS[0]] < 0.9, acc  # untrained: no such head yet
    rollouts = [i for i in body["items"] if i["meta"]["view"] == "rollout"]
    assert sorted(i["step"] for i in rollouts) == list(CHECKPOINTS)
