"""The ``weights`` view kind: `run.log_weights` writes what `deepscope.weights` computes, and
``/api/views/weights`` serves it back: statistics equal numpy's, the heatmap is the analysis'
max-|w| pooled matrix, the filters are `filter_images`, the ESD summary is the spectrum's."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

import deepscope
from deepscope.analysis.weights.filters import filter_images
from deepscope.analysis.weights.heatmap import as_matrix, pooled
from deepscope.analysis.weights.spectra import spectrum
from deepscope.errors import DeepscopeError
from deepscope.server.app import Settings, create_app
from deepscope.views import envelope
from deepscope.views.kinds.weights import WeightsDoc, WeightsView
from deepscope.views.schema import validate

BASE = "http://127.0.0.1:6100"


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(6, 3, 5, 5)).astype(np.float32)
    wide = rng.normal(size=(1030, 40)).astype(np.float32)
    wide[517, 3] = -50.0  # one extreme: pooling must keep it, with its sign
    bias = np.array([0.0, 1.5, np.nan, np.inf, -2.0, 0.0], dtype=np.float32)
    return {"conv.weight": conv, "fc.weight": wide, "conv.bias": bias}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[TestClient, dict[str, Any]]:
    root = tmp_path_factory.mktemp("weights-kind")
    tensors = _tensors()
    with deepscope.init(logdir=root, name="w") as run:
        out = run.log_weights("weights", deepscope.weights(tensors), step=3)
        assert out.logged == list(tensors) and out.skipped == 0
        with pytest.warns(UserWarning, match="first 1 of 3"):
            capped = run.log_weights("capped", deepscope.weights(tensors), step=0, max_tensors=1)
        assert capped.logged == ["conv.weight"] and capped.skipped == 2
    client = TestClient(create_app(Settings(logdir=root)), base_url=BASE)
    response = client.get("/api/views/weights?run=w&tag=weights")
    assert response.status_code == 200, response.text
    body = response.json()
    validate(body, WeightsView)
    return client, {i["meta"]["entry"]: i for i in body["items"]}


def _array(client: TestClient, item: dict[str, Any], part: str, **query: Any) -> np.ndarray:
    ref = item["parts"][part]
    assert ref is not None and ref["encoding"] == "array"
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    response = client.get(ref["url"] + extra)
    assert response.status_code == 200, response.text
    return envelope.decode(response.content)


def test_statistics_equal_numpy(served: tuple[TestClient, dict[str, Any]]) -> None:
    _, items = served
    for name, values in _tensors().items():
        meta = items[name]["meta"]
        v = values.astype(np.float64).reshape(-1)
        f = v[np.isfinite(v)]
        assert meta["shape"] == list(values.shape) and meta["dtype"] == "float32"
        assert meta["count"] == v.size
        assert meta["nan"] == int(np.isnan(v).sum()) and meta["inf"] == int(np.isinf(v).sum())
        for key, want in {
            "mean": f.mean(), "std": f.std(), "min": f.min(), "max": f.max(),
            "absmax": np.abs(f).max(), "l2": np.linalg.norm(f), "zeros": (v == 0).mean(),
        }.items():  # fmt: skip
            assert math.isclose(meta[key], float(want), rel_tol=1e-9, abs_tol=1e-12), key
    assert items["conv.bias"]["meta"]["layer"] == "conv"


def test_heatmap_is_the_pooled_matrix_and_keeps_the_extreme(
    served: tuple[TestClient, dict[str, Any]],
) -> None:
    client, items = served
    wide = _tensors()["fc.weight"]
    meta = items["fc.weight"]["meta"]
    want, fy, fx = pooled(as_matrix(wide), 512, 512)
    assert (fy, fx) == (3, 1) and meta["pooled"] is True and meta["poolFactor"] == [3, 1]
    assert meta["matrixShape"] == [1030, 40] and meta["heatShape"] == list(want.shape)
    heat = _array(client, items["fc.weight"], "heatmap")
    assert heat.dtype == np.float32
    np.testing.assert_array_equal(heat, want.astype(np.float32))
    assert heat[517 // 3, 3] == -50.0 and meta["heatLimit"] == 50.0
    small = _array(client, items["fc.weight"], "heatmap", maxSize=100)  # re-pooled by max |w|
    assert small.shape == (86, 40) and small.min() == -50.0  # 344 rows / 4
    conv = _array(client, items["conv.weight"], "heatmap")
    np.testing.assert_array_equal(conv, _tensors()["conv.weight"].reshape(6, -1))
    assert items["conv.weight"]["meta"]["pooled"] is False


def test_filters_are_the_analysis_images(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, items = served
    tiles = _array(client, items["conv.weight"], "filters")
    assert tiles.dtype == np.uint8 and tiles.shape == (6, 5, 5, 3)
    np.testing.assert_array_equal(tiles, filter_images(_tensors()["conv.weight"]))
    assert items["conv.weight"]["meta"]["filters"] == 6
    assert items["fc.weight"]["parts"]["filters"] is None


def test_esd_summary_is_the_spectrum(served: tuple[TestClient, dict[str, Any]]) -> None:
    client, items = served
    for name in ("conv.weight", "fc.weight"):
        item = items[name]
        spec = spectrum(_tensors()[name])
        doc = json.loads(client.get(item["url"]).content)
        validate(doc, WeightsDoc)
        esd = doc["esd"]
        assert math.isclose(esd["alpha"], spec.alpha, rel_tol=1e-9)
        assert math.isclose(item["meta"]["alpha"], spec.alpha, rel_tol=1e-9)
        assert math.isclose(item["meta"]["spectralNorm"], spec.spectral_norm, rel_tol=1e-9)
        assert sum(esd["counts"]) + esd["nonPositive"] == esd["n"] == spec.evals.size
        assert len(esd["log10Edges"]) == len(esd["counts"]) + 1
        lo = math.log10(spec.evals[spec.evals > 0].min())
        assert math.isclose(esd["log10Edges"][0], lo, rel_tol=1e-9)
    bias = items["conv.bias"]
    assert bias["meta"]["alpha"] is None
    assert json.loads(client.get(bias["url"]).content)["esd"] is None


def test_log_weights_refuses_what_is_not_a_weights_result(tmp_path: Path) -> None:
    with deepscope.init(logdir=tmp_path, name="bad") as run:
        with pytest.raises(DeepscopeError, match="deepscope.weights"):
            run.log_weights("w", {"a": np.ones(2)})
        with pytest.raises(DeepscopeError, match="no tensor named 'nope'"):
            run.log_weights("w", deepscope.weights({"a": np.ones(2)}), names=["nope"])
