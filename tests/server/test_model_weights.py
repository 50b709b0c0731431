"""``/api/model/weights``: the weights behind ``deepscope view MODEL`` and ``deepscope diff
A B --serve``, read through `deepscope.weights` by the command and served without torch."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file
from server_support import strict_loads
from starlette.testclient import TestClient

import deepscope
from deepscope.analysis.weights.heatmap import as_matrix, pooled
from deepscope.commands.diff import diff as diff_command
from deepscope.server.app import Settings, create_app
from deepscope.sources.factory import target_graph
from deepscope.views import envelope
from deepscope.views.kinds.weights import ModelWeightsNode, ModelWeightsSource, ModelWeightsTable
from deepscope.views.kinds.weights_diff import DiffWeightsSource
from deepscope.views.schema import validate

BASE = "http://127.0.0.1:6101"


def _model(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    conv = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    conv[0] = 0.0  # a dead filter: sparsity
    return {
        "features.0.weight": conv,
        "features.0.bias": np.zeros(4, np.float32),
        "classifier.weight": rng.normal(size=(700, 36)).astype(np.float32),
    }


def _stats_match(meta: dict[str, Any], values: np.ndarray) -> None:
    v = values.astype(np.float64).reshape(-1)
    assert meta["count"] == v.size and meta["shape"] == list(values.shape)
    assert math.isclose(meta["l2"], float(np.linalg.norm(v)), rel_tol=1e-9)
    assert math.isclose(meta["mean"], float(v.mean()), rel_tol=1e-9, abs_tol=1e-15)
    assert math.isclose(meta["zeros"], float((v == 0).mean()), rel_tol=1e-12)


def _array(get: Any, url: str) -> np.ndarray:
    r = get(url)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(envelope.CONTENT_TYPE)
    return envelope.decode(r.content)


def _serve(args: list[str]) -> tuple[subprocess.Popen[str], str]:
    """``deepscope <args> --port 0`` with torch blocked; the process and its URL."""
    code = "import sys; sys.modules['torch'] = None\nfrom deepscope.cli import main; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args, "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while "http://" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line or proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    return proc, line.split("at ", 1)[1].split()[0].rstrip("/")


def test_view_serves_node_weights_with_torch_blocked(tmp_path: Path) -> None:
    model = _model()
    path = tmp_path / "m.safetensors"
    save_file(model, str(path))
    proc, url = _serve(["view", str(path)])
    try:
        # a weights-only file: one node per tensor, grouped by module path
        body = strict_loads(httpx.get(url + "/api/model/weights?node=features.0.weight").text)
        validate(body, ModelWeightsNode)
        (t,) = body["tensors"]
        _stats_match(t["meta"], model["features.0.weight"])
        assert t["parts"] == ["heatmap", "filters"] and t["esd"]["n"] == 9 * 3  # 9 positions
        heat = _array(httpx.get, url + "/api/model/weights/array?name=features.0.weight")
        np.testing.assert_array_equal(heat, model["features.0.weight"].reshape(4, -1))
        group = strict_loads(httpx.get(url + "/api/model/weights?node=ns:features").text)
        assert [x["name"] for x in group["tensors"]] == ["features.0.bias", "features.0.weight"]
        table = strict_loads(httpx.get(url + "/api/model/weights/table").text)
        validate(table, ModelWeightsTable)
        assert [m["entry"] for m in table["tensors"]] == sorted(model)  # the file's order
        assert httpx.get(url + "/api/model/weights?node=nope").status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    a, b = _model(), _model()
    b["classifier.weight"] = b["classifier.weight"].copy()
    b["classifier.weight"][10:20, 5] += 1.0  # one layer fine-tuned
    b["extra.weight"] = np.ones((2, 2), np.float32)
    save_file(a, str(tmp_path / "a.safetensors"))
    save_file(b, str(tmp_path / "b.safetensors"))
    return tmp_path / "a.safetensors", tmp_path / "b.safetensors", a, b


def test_diff_source_serves_rows_and_delta_heatmaps(files: Any) -> None:
    pa, pb, a, b = files
    source = DiffWeightsSource(deepscope.diff(pa, pb), labels=("a", "b"))
    settings = Settings(model_graph=target_graph(str(pb), []), model_weights=source)
    client = TestClient(create_app(settings), base_url=BASE)
    table = client.get("/api/model/weights/table").json()
    validate(table, ModelWeightsTable)
    rows = {r["name"]: r for r in table["diff"]}
    assert {n for n, r in rows.items() if r["status"] != "same"} == {
        "classifier.weight", "extra.weight"
    }  # fmt: skip
    assert rows["extra.weight"]["status"] == "added"
    d = b["classifier.weight"].astype(np.float64) - a["classifier.weight"]
    assert math.isclose(rows["classifier.weight"]["normDelta"], float(np.linalg.norm(d)))
    assert math.isclose(
        rows["classifier.weight"]["relDelta"],
        float(np.linalg.norm(d) / np.linalg.norm(a["classifier.weight"].astype(np.float64))),
    )
    node = client.get("/api/model/weights?node=classifier.weight").json()
    assert node["tensors"][0]["parts"] == ["heatmap", "delta"]
    delta = _array(client.get, "/api/model/weights/array?name=classifier.weight&part=delta")
    want, fy, _ = pooled(as_matrix(d), 512, 512)
    assert fy == 2 and delta.shape == want.shape == (350, 36)
    np.testing.assert_array_equal(delta, want.astype(np.float32))
    assert delta.max() == 1.0 and (delta != 0).sum() == 5  # rows 10..19 pooled by 2
    gone = client.get("/api/model/weights/array?name=extra.weight&part=delta")
    assert gone.status_code == 404


def test_model_routes_need_a_served_model(tmp_path: Path) -> None:
    client = TestClient(create_app(Settings(logdir=tmp_path)), base_url=BASE)
    r = client.get("/api/model/weights/table")
    assert r.status_code == 400 and "deepscope view MODEL" in r.json()["error"]["message"]
    src = ModelWeightsSource(deepscope.weights(_model()))
    client = TestClient(create_app(Settings(model_weights=src)), base_url=BASE)
    assert client.get("/api/model/weights/array?name=x&part=evil").status_code == 400
    assert client.get("/api/model/weights/array?name=nope").status_code == 404


def test_diff_command_keeps_its_table(files: Any) -> None:
    pa, pb, _, _ = files
    result = CliRunner().invoke(diff_command, [str(pa), str(pb)])
    assert result.exit_code == 0, result.output
    assert "added     extra.weight" in result.output
    assert "changed   classifier.weight" in result.output
    assert "2 of 4 tensors differ" in result.output


def test_diff_serve_opens_the_diff_view(files: Any) -> None:
    pa, pb, _, _ = files
    proc, url = _serve(["diff", str(pa), str(pb), "--serve"])
    try:
        assert httpx.get(url + "/api/health").json()["mode"] == "model"
        table = strict_loads(httpx.get(url + "/api/model/weights/table?compute=0").text)
        assert table["mode"] == "diff" and table["labels"] == ["a.safetensors", "b.safetensors"]
        assert table["tensors"] == []  # compute=0 reads nothing
        changed = {r["name"] for r in table["diff"] if r["status"] != "same"}
        assert changed == {"classifier.weight", "extra.weight"}
        graph = strict_loads(httpx.get(url + "/api/graph?model=1").text)
        assert "extra.weight" in {n["id"] for n in graph["nodes"]}  # B's graph
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_on_demand_spectra_are_bounded() -> None:
    rng = np.random.default_rng(1)
    tensors = {"wide": rng.normal(size=(40, 30)), "narrow": rng.normal(size=(40, 20))}
    src = ModelWeightsSource(deepscope.weights(tensors), max_spectrum_side=25)
    rows = {t["name"]: t for t in src.tensors(["wide", "narrow"])[0]}
    assert rows["wide"]["esd"] is None and rows["wide"]["meta"]["alpha"] is None
    assert rows["narrow"]["esd"]["n"] == 20 and rows["narrow"]["meta"]["alpha"] is not None
