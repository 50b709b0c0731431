"""deepscope.weights on a live Keras 3 model (torch backend) and on its .keras / .h5 files
(read by the sandboxed safe loaders: statistics from the worker that parses the file,
values from a second sandboxed task, in batches, when a view needs them)."""

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
def test_keras_files_give_statistics_and_values(model: Any, tmp_path: Path, suffix: str) -> None:
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
    # values: the file's numbers, in torch layout like a live model's (out, in[, kh, kw])
    np.testing.assert_array_equal(w.values(name), kernel.T.astype(np.float32))
    conv = model.get_layer("c1").kernel.numpy()
    cname = next(n for n, t in w.tensors.items() if t.shape == conv.shape)
    np.testing.assert_array_equal(w.values(cname), conv.transpose(3, 2, 0, 1))
    assert w.heatmap(name).boxes and len(w.filters().boxes) == 4  # RGB filters, one per output
    assert w.spectra([name])[name].singular_values.size == 5


def test_keras_file_values_come_in_batches_and_refuse_what_they_cannot_read(
    model: Any, tmp_path: Path
) -> None:
    from deepscope.analysis.weights._keras_values import KerasValues, decode_values
    from deepscope.errors import ModelFormatError

    path = tmp_path / "m.keras"
    model.save(path)
    w = deepscope.weights(path)
    shapes = {n: t.shape for n, t in w.tensors.items()}
    values = KerasValues(path, legacy=False, shapes=shapes, dtypes=dict.fromkeys(shapes, "float32"))
    first, *rest = shapes
    values.get(first)
    for n in rest:  # read with the first: one worker for the whole (small) model
        assert values.get(n).shape == shapes[n]
    assert values.batches == 1
    with pytest.raises(ModelFormatError, match="no tensor named"):
        values.get("layers/nope/vars/0")
    # an answer is checked against what load_model read: a wrong shape or size is refused
    good = {"name": first, "dtype": "<f4", "shape": list(shapes[first]), "data": ""}
    with pytest.raises(ModelFormatError, match="wrongly"):
        decode_values({"values": [good]}, shapes)  # no bytes for a non-empty tensor
    with pytest.raises(ModelFormatError, match="wrongly"):
        decode_values({"values": [{**good, "dtype": "|O"}]}, shapes)
    with pytest.raises(ModelFormatError, match="malformed"):
        decode_values({"values": [{**good, "data": "!!"}]}, shapes)
