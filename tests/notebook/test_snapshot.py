"""Snapshots of the dashboard API (`deepscope.notebook.snapshot`, `ViewBuffer.snapshot`):
recorded through the server itself, bounded, filtered by run and tag, blobs inlined."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepscope.notebook.snapshot import Limits, snapshot_logdir
from deepscope.views import embed, envelope


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import deepscope

    root = tmp_path_factory.mktemp("snap")
    with deepscope.init(logdir=root, name="a") as run:
        for step in range(3000):
            run.log(
                {"train/loss": math.sin(step / 50.0) + (5.0 if step == 1234 else 0.0)}, step=step
            )
        for step in range(5):
            run.log({"test/acc": step / 5.0}, step=step)
        for step in range(12):
            run.log_image(
                "img", np.full((6, 6, 3), step * 20, dtype=np.uint8), step=step, dataformats="HWC"
            )
    with deepscope.init(logdir=root, name="b") as run:
        run.log({"train/loss": 1.0}, step=0)
    return root


def _answer(snap: embed.Snapshot, path: str, **params: str) -> Any:
    return snap["answers"][embed.request_key(path, list(params.items()))]


def test_scalars_are_downsampled_keeping_first_last_and_extremes(logdir: Path) -> None:
    rec = snapshot_logdir(logdir, limits=Limits(max_points=200))
    points = _answer(rec.snapshot, "scalars", run="a", tag="train/loss")["points"]
    assert 50 < len(points) <= 200
    steps = [p[0] for p in points]
    assert steps[0] == 0 and steps[-1] == 2999 and 1234 in steps  # the spike survives
    assert rec.snapshot["runs"] == ["a", "b"]
    assert rec.snapshot["panel"] is None


def test_runs_and_tags_pick_by_glob_and_images_are_capped(logdir: Path) -> None:
    rec = snapshot_logdir(
        logdir, runs=["a"], tags=["train/*", "img"], limits=Limits(images_per_tag=3)
    )
    snap = rec.snapshot
    assert snap["runs"] == ["a"]
    assert [r["name"] for r in _answer(snap, "runs")["runs"]] == ["a"]
    tags = {t["tag"] for t in _answer(snap, "tags", run="a")["tags"]}
    assert tags == {"train/loss", "img"}
    assert not any("test/acc" in k for k in snap["answers"])
    images = _answer(snap, "images", run="a", tag="img")["images"]
    assert [i["step"] for i in images] == [9, 10, 11]  # the latest three
    for i in images:
        url = snap["blobs"][embed.blob_key("a", i["id"])]
        assert url.startswith("data:image/png;base64,")
    assert len([k for k in snap["blobs"]]) == 3


def test_blobs_past_the_budget_are_left_out_and_named(logdir: Path) -> None:
    rec = snapshot_logdir(logdir, runs=["a"], limits=Limits(max_blob_bytes=1))
    assert _answer(rec.snapshot, "images", run="a", tag="img")["images"] == []
    assert rec.snapshot["blobs"] == {}
    assert any("blobs left out" in n for n in rec.notes)


def test_unknown_runs_are_a_clear_error(logdir: Path) -> None:
    from deepscope.errors import DeepscopeError

    with pytest.raises(DeepscopeError, match="no run matches"):
        snapshot_logdir(logdir, runs=["nope*"])


def test_view_buffer_snapshot_inlines_every_part_and_downsamples_arrays() -> None:
    torch = pytest.importorskip("torch")
    import deepscope

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), torch.nn.ReLU())
    acts = deepscope.activations(model, torch.rand(1, 1, 300, 20), layers=["0"])
    buffer = embed.ViewBuffer("nb 1")
    from deepscope.views.kinds.activations import log_activations

    log_activations(buffer, "acts", acts, 0)
    snap = buffer.snapshot()
    assert snap["panel"] == "activations" and snap["runs"] == ["nb 1"]
    view = snap["answers"][embed.request_key("views/activations", [("run", "nb 1")])]
    (item,) = view["items"]
    ref = item["parts"]["maps"]
    url = snap["blobs"][embed.blob_key("nb 1", ref["id"])]
    assert url.startswith("data:application/x-deepscope-array;base64,")
    arr = envelope.decode(base64.b64decode(url.split(",", 1)[1]))
    assert arr.shape[-2:] == (150, 20)  # 300 rows over ARRAY_MAX_SIZE: 2-row block means
    tags = snap["answers"][embed.request_key("tags", [("run", "nb 1")])]["tags"]
    assert [(t["kind"], t["tag"]) for t in tags] == [("activations", "acts")]


def test_request_keys_are_canonical_json() -> None:
    key = embed.request_key("scalars", [("tag", "a/b"), ("run", "é<x>")])
    assert json.loads(key) == ["scalars", [["run", "é<x>"], ["tag", "a/b"]]]
    assert key == '["scalars",[["run","é<x>"],["tag","a/b"]]]'
