"""Keras: structure from plain-JSON config, weights from h5 in a sandbox worker."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from deepscope.sources import keras_file

h5py = pytest.importorskip("h5py")


def layer(cls: str, name: str, inbound: Any = None, **cfg: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "module": "keras.layers",
        "class_name": cls,
        "name": name,
        "config": {"name": name, **cfg},
    }
    if inbound is not None:
        entry["inbound_nodes"] = inbound
    return entry


def k3(src: str) -> list[dict[str, Any]]:
    """Keras 3 inbound_nodes referring to layer `src`."""
    tensor = {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None], "dtype": "float32", "keras_history": [src, 0, 0]},
    }
    return [{"args": [tensor], "kwargs": {}}]


def write_keras(
    path: Path, config: dict[str, Any], weights: dict[str, np.ndarray] | None = None
) -> Path:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        for name, arr in (weights or {}).items():
            h5.create_dataset(name, data=arr)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("metadata.json", json.dumps({"keras_version": "3.13.1"}))
        z.writestr("model.weights.h5", buf.getvalue())
    return path


SEQUENTIAL = {
    "module": "keras",
    "class_name": "Sequential",
    "config": {
        "name": "seq",
        "layers": [
            layer("InputLayer", "input", batch_shape=[None, 28, 28, 1]),
            layer("Conv2D", "conv", filters=8, kernel_size=[3, 3], strides=[1, 1], padding="same"),
            layer("BatchNormalization", "bn"),
            layer("MaxPooling2D", "pool", pool_size=[2, 2]),
            layer("Flatten", "flat"),
            layer("Dense", "dense", units=10),
        ],
    },
}


def test_sequential_structure_shapes_and_params(tmp_path: Path) -> None:
    path = write_keras(
        tmp_path / "m.keras",
        SEQUENTIAL,
        {
            "layers/dense/vars/0": np.ones((1568, 10), np.float32),
            "layers/dense/vars/1": np.zeros(10, np.float32),
        },
    )
    assert keras_file.match(path)
    model = keras_file.load(path)
    g = model.graph
    assert [n.op for n in g.nodes] == [
        "input_layer",
        "conv2d",
        "batch_normalization",
        "max_pooling2d",
        "flatten",
        "dense",
    ]
    assert g.node("conv").outputs[0].shape == (None, 28, 28, 8)
    assert g.node("flat").outputs[0].shape == (None, 14 * 14 * 8)
    params = sum(p.numel for n in g.nodes for p in n.params)
    assert params == (3 * 3 * 1 * 8 + 8) + 4 * 8 + (1568 * 10 + 10)
    assert [(e.src, e.dst) for e in g.edges][:2] == [("input", "conv"), ("conv", "bn")]
    assert model.weights["layers/dense/vars/0"].shape == (1568, 10)
    assert g.meta["weightStats"]["layers/dense/vars/0"]["mean"] == 1.0
    assert g.meta["kerasVersion"] == "3.13.1"


@pytest.mark.parametrize("style", ["keras3", "keras2"])
def test_functional_edges_from_inbound_nodes(tmp_path: Path, style: str) -> None:
    def inbound(*srcs: str) -> Any:
        if style == "keras2":
            return [[[s, 0, 0, {}] for s in srcs]]
        return [{"args": [[k3(s)[0]["args"][0] for s in srcs]], "kwargs": {}}]

    config = {
        "class_name": "Functional",
        "config": {
            "name": "f",
            "layers": [
                layer("InputLayer", "x", batch_shape=[None, 4]),
                layer("Dense", "a", inbound("x"), units=3),
                layer("Dense", "b", inbound("x"), units=3),
                layer("Add", "sum", inbound("a", "b")),
            ],
        },
    }
    g = keras_file.load(write_keras(tmp_path / "f.keras", config)).graph
    assert sorted((e.src, e.dst) for e in g.edges) == [
        ("a", "sum"),
        ("b", "sum"),
        ("x", "a"),
        ("x", "b"),
    ]
    assert g.node("a").params[0].shape == (4, 3)


def test_nested_model_is_a_namespace(tmp_path: Path) -> None:
    inner = {
        "module": "keras",
        "class_name": "Sequential",
        "name": "block",
        "config": {"name": "block", "layers": [layer("Dense", "d1", units=2)]},
    }
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "outer",
            "layers": [layer("InputLayer", "in", batch_shape=[None, 5]), inner],
        },
    }
    g = keras_file.load(write_keras(tmp_path / "n.keras", config)).graph
    assert g.node("block/d1").namespace == "block/d1"
    assert g.node("block/d1").params[0].shape == (5, 2)
    # each layer's group and the nested model's are named by their Keras class, as torch
    # modules' are: the graph panel shows "Dense · 12 params", not "group"
    assert g.meta["moduleTypes"] == {"in": "InputLayer", "block": "Sequential", "block/d1": "Dense"}
    from deepscope.server.graph_index import GraphIndex

    level = GraphIndex(g).level("block")
    assert [(n["id"], n["moduleType"]) for n in level["nodes"] if n["kind"] == "group"] == [
        ("ns:block/d1", "Dense")
    ]


def test_worker_abort_keeps_the_structure_and_leaves_no_zombie(tmp_path: Path) -> None:
    path = write_keras(tmp_path / "m.keras", SEQUENTIAL, {"w": np.zeros(3)})
    before = _children()
    model = keras_file.load(path, fault="abort")
    assert [n.op for n in model.graph.nodes][-1] == "dense"
    assert model.notes == ["weights not read: worker died: SIGABRT"]
    assert _children() <= before  # the worker was reaped: no new child, zombie or alive


def _children() -> set[int]:
    """PIDs of this process's children (zombies included), from /proc."""
    kids = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            kids.add(int(stat.parent.name))
    return kids


def test_legacy_h5_reads_model_config_attribute(tmp_path: Path) -> None:
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(SEQUENTIAL)
        h5.create_dataset("model_weights/dense/kernel", data=np.ones((1568, 10), np.float32))
    assert keras_file.match(path)
    model = keras_file.load(path)
    assert model.graph.node("dense").outputs[0].shape == (None, 10)
    assert model.weights["dense/kernel"].shape == (1568, 10)
