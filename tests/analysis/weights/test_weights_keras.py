"""deepscope.weights on a live Keras 3 model (torch backend) and on its .keras / .h5 files
(read by the sandboxed safe loaders: statistics only, values stay in the worker)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("Keras runs another backend in this process", allow_module_level=True)

import deepscope  # noqa: E402
from deepscope.errors import DeepscopeError  # noqa: E402


@pytest.fixture(scope="module")
def model() -> Any:
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(4, 3, name="c1")(inp)
    h = keras.layers.Flatten(name="flat")(h)
    return keras.Model(inp, keras.layers.Dense(5, name="head")(h))


def test_live_keras_names_values_and_torch_layout(model: Any) -> None:
    w = deepscope.weights(model)
    assert w.source == "keras"
    assert list(w.tensors) == ["c1.kernel", "c1.bias", "head.kernel", "head.bias"]
    kernel = model.get_layer("c1").kernel.numpy()  # (kh, kw, in, out)
    assert w.tensors["c1.kernel"].shape == (3, 3, 3, 4)
    np.testing.assert_array_equal(w.values("c1.kernel"), kernel.transpose(3, 2, 0, 1))
    assert w.stats()["c1.kernel"]["std"] == pytest.approx(float(kernel.astype(np.float64).std()))
    assert len(w.filters().boxes) == 4  # 3 input channels: RGB filters, one per output
    assert w.spectra(["head.kernel"])["head.kernel"].singular_values.size == 5


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_keras_files_give_worker_statistics(model: Any, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"m{suffix}"
    model.save(path)
    w = deepscope.weights(path)
    assert w.source == "keras" and len(w.tensors) == 4
    kernel = model.get_layer("head").kernel.numpy().astype(np.float64)
    name = next(n for n, t in w.tensors.items() if t.shape == kernel.shape)
    row = w.stats()[name]
    assert row["count"] == kernel.size
    assert row["mean"] == pytest.approx(kernel.mean(), rel=1e-5)
    assert row["max"] == pytest.approx(kernel.max(), rel=1e-6)
    with pytest.raises(DeepscopeError, match="live Keras model"):
        w.heatmap(name)
