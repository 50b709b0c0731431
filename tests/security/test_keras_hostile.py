"""Hostile Keras files (THREATS.md M10-M12): reads outside the file, amplification, fuzzing."""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepscope.errors import ModelFormatError, UnsafeModelError
from deepscope.graph.aggregate import aggregate
from deepscope.sources import _keras_config, keras_file
from deepscope.sources._keras_config import KerasConfigParser
from deepscope.sources.summary import summary_from_graph

h5py = pytest.importorskip("h5py")

CANARY_VALUE = 31337.25  # float32-exact; must never show up in any output
CONFIG = {
    "class_name": "Sequential",
    "config": {
        "name": "seq",
        "layers": [
            {"class_name": "InputLayer", "config": {"name": "in", "batch_shape": [None, 4]}},
            {"class_name": "Dense", "name": "dense", "config": {"name": "dense", "units": 4}},
        ],
    },
}


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A raw file and an HDF5 file (dataset /secret) full of the canary value."""
    raw = tmp_path / "outside" / "secret.bin"
    raw.parent.mkdir()
    raw.write_bytes(np.full(16, CANARY_VALUE, np.float32).tobytes())
    with h5py.File(raw.with_suffix(".h5"), "w") as h5:
        h5["secret"] = np.full((4, 4), CANARY_VALUE, np.float32)
    return raw


def _hostile_weights(h5: Any, name: str, how: str, canary: Path) -> None:
    if how == "external_storage":
        h5.create_dataset(name, shape=(4, 4), dtype="f4", external=[(str(canary), 0, 64)])
    elif how == "external_link":
        h5[name] = h5py.ExternalLink(str(canary.with_suffix(".h5")), "/secret")
    elif how == "virtual_dataset":
        layout = h5py.VirtualLayout(shape=(4, 4), dtype="f4")
        layout[:] = h5py.VirtualSource(str(canary.with_suffix(".h5")), "secret", shape=(4, 4))
        h5.create_virtual_dataset(name, layout)
    h5[name.rsplit("/", 1)[0] + "/bias"] = np.zeros(4, np.float32)


def _write(folder: Path, suffix: str, how: str, canary: Path) -> Path:
    if suffix == ".h5":
        path = folder / "model.h5"
        with h5py.File(path, "w") as h5:
            h5.attrs["model_config"] = json.dumps(CONFIG)
            _hostile_weights(h5, "model_weights/dense/dense/kernel", how, canary)
        return path
    path = folder / "model.keras"
    weights = folder / "model.weights.h5"
    with h5py.File(weights, "w") as h5:
        _hostile_weights(h5, "layers/dense/vars/0", how, canary)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(CONFIG))
        z.write(weights, "model.weights.h5")
    weights.unlink()
    return path


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("how", ["external_storage", "external_link", "virtual_dataset"])
def test_M10_weights_from_outside_the_file_are_refused(
    tmp_path: Path, canary: Path, suffix: str, how: str
) -> None:
    path = _write(tmp_path, suffix, how, canary)
    with pytest.raises(UnsafeModelError, match="external|virtual") as info:
        keras_file.load(path)
    assert str(CANARY_VALUE) not in str(info.value)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
@pytest.mark.parametrize("how", ["external_storage", "external_link", "virtual_dataset"])
def test_M10_the_values_reader_refuses_outside_data_too(
    tmp_path: Path, canary: Path, suffix: str, how: str
) -> None:
    """`deepscope.weights(file).values()` reads through its own sandbox task (`h5_values`),
    asked by name: it checks every link and dataset itself, not only `load_model`'s walk."""
    from deepscope.sources._sandbox import run_task

    path = _write(tmp_path, suffix, how, canary)
    legacy = suffix == ".h5"
    name = "dense/dense/kernel" if legacy else "layers/dense/vars/0"
    options = {"names": [name], "member": None if legacy else "model.weights.h5"}
    with pytest.raises(UnsafeModelError, match="external|virtual|link") as info:
        run_task("h5_values", path, options)
    assert str(CANARY_VALUE) not in str(info.value)


def test_M10_model_weights_group_as_external_link_is_refused(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "model.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(CONFIG)
        h5["model_weights"] = h5py.ExternalLink(str(canary.with_suffix(".h5")), "/")
    with pytest.raises(UnsafeModelError, match="link"):
        keras_file.load(path)


def test_M10_confined_worker_cannot_open_any_file(tmp_path: Path, canary: Path) -> None:
    """Even with the checks skipped, the confined child cannot read the canary (Landlock)."""
    path = _write(tmp_path, ".h5", "external_storage", canary)
    script = textwrap.dedent(
        f"""
        import os, sys
        import h5py, numpy
        from deepscope.sources._sandbox import confine_files
        fd = os.open({str(path)!r}, os.O_RDONLY)
        if not confine_files():
            print("NO-LANDLOCK"); sys.exit(0)
        try:
            open({str(canary)!r}, "rb")
            print("OPENED")
        except PermissionError:
            print("DENIED")
        with h5py.File(os.fdopen(fd, "rb"), "r") as h5:
            try:
                print(h5["model_weights/dense/dense/kernel"][()].tolist())
            except OSError:
                print("READ-FAILED")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    if "NO-LANDLOCK" in out.stdout:
        pytest.skip("this kernel has no Landlock; the readers' checks are the only guard")
    assert out.stdout.split() == ["DENIED", "READ-FAILED"], out.stdout + out.stderr
    assert str(CANARY_VALUE) not in out.stdout + out.stderr


# --- M11: amplification -----------------------------------------------------------------


def test_M11_compressed_config_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """1.9M layers: an 84 MB config.json in a ~240 KB zip (the reported 74 s / 2.7 GB file)."""
    path = tmp_path / "bomb.keras"
    layer = b'{"class_name": "Dense", "config": {"units": 1}},'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z, z.open("config.json", "w") as f:
        f.write(b'{"class_name": "Sequential", "config": {"layers": [')
        for _ in range(190):
            f.write(layer * 10_000)
        f.write(b"{}]}}")
    assert path.stat().st_size < 400_000
    script = textwrap.dedent(
        f"""
        from deepscope.errors import ModelFormatError
        from deepscope.sources import keras_file
        try:
            keras_file.load({str(path)!r})
            print("LOADED")
        except ModelFormatError as e:
            print("REFUSED", str(e).replace(" ", "_")[:300])
        # VmHWM is this process's own peak: ru_maxrss would carry the parent's peak
        # across fork+exec (the kernel keeps the old mm's high-water mark)
        status = open('/proc/self/status').read().split('VmHWM:')[1]
        print(int(status.split()[0]) // 1024)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    verdict, reason, peak_mb = out.stdout.split()
    assert verdict == "REFUSED" and "config.json" in reason, out.stdout + out.stderr
    assert int(peak_mb) < 512


def _keras_zip(path: Path, config: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("config.json", config)
    return path


def test_M11_layer_count_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_keras_config, "MAX_LAYERS", 50)
    config = copy.deepcopy(CONFIG)
    config["config"]["layers"] += [  # type: ignore[index]
        {"class_name": "ReLU", "name": f"r{i}", "config": {"name": f"r{i}"}} for i in range(49)
    ]
    path = _keras_zip(tmp_path / "many.keras", json.dumps(config).encode())
    with pytest.raises(ModelFormatError, match="has 51 layers, over the limit of 50") as info:
        keras_file.load(path)
    assert "real models have far fewer" in str(info.value)
    assert "MAX_LAYERS" not in str(info.value) and "_keras_config" not in str(info.value)
    monkeypatch.setattr(_keras_config, "MAX_LAYERS", 51)
    assert len(keras_file.load(path).graph.nodes) == 51


def test_M12_deeply_nested_valid_json_is_called_too_deep_not_invalid(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    config = json.dumps(CONFIG).replace('"units": 4', '"units": 4, "x": ' + deep, 1)
    json.loads(config.replace(deep, "[]"))  # otherwise valid
    path = _keras_zip(tmp_path / "deep.keras", config.encode())
    with pytest.raises(ModelFormatError, match="nests JSON objects and arrays too deeply") as info:
        keras_file.load(path)
    assert "not valid JSON" not in str(info.value) and "levels" in str(info.value)


STATS_TENSOR = 1 << 18  # float32 zeros: 1 MB each in memory, a few KB gzipped


def _many_zero_datasets(folder: Path, suffix: str, count: int) -> Path:
    """A Dense model whose layer also holds `count` gzip datasets of zeros zz00, zz01, ..."""

    def fill(group: Any, kernel: str, bias: str) -> None:
        group[kernel] = np.ones((4, 4), np.float32)
        group[bias] = np.zeros(4, np.float32)
        for i in range(count):
            group.create_dataset(
                f"zz{i:02d}", data=np.zeros(STATS_TENSOR, np.float32), compression="gzip"
            )

    if suffix == ".h5":
        path = folder / "many.h5"
        with h5py.File(path, "w") as h5:
            h5.attrs["model_config"] = json.dumps(CONFIG)
            fill(h5.create_group("model_weights/dense/dense"), "kernel", "bias")
        return path
    weights, path = folder / "model.weights.h5", folder / "many.keras"
    with h5py.File(weights, "w") as h5:
        fill(h5.create_group("layers/dense/vars"), "0", "1")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(CONFIG))
        z.write(weights, "model.weights.h5")
    return path


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_M11_many_compressed_datasets_stay_within_the_stats_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    from deepscope.sources import _keras_h5

    path = _many_zero_datasets(tmp_path, suffix, 12)
    # the default budget covers a normal model (here 12 MB): every tensor gets statistics
    model = keras_file.load(path)
    assert len(model.weights) == 14
    assert set(model.graph.meta["weightStats"]) == set(model.weights)
    assert "weightStatsSkipped" not in model.graph.meta
    assert not any("statistics skipped" in n for n in model.notes)
    # a budget of five datasets and a bit: kernel, bias, zz00..zz04 get statistics
    monkeypatch.setattr(_keras_h5, "STATS_BUDGET", 5 * 4 * STATS_TENSOR + 1024)
    model = keras_file.load(path)
    stats, skipped = model.graph.meta["weightStats"], model.graph.meta["weightStatsSkipped"]
    assert len(model.weights) == 14  # every tensor still listed with shape and dtype
    small = ["bias", "kernel"] if suffix == ".h5" else ["0", "1"]
    assert sorted(n.rsplit("/", 1)[1] for n in stats) == small + [f"zz{i:02d}" for i in range(5)]
    assert sorted(n.rsplit("/", 1)[1] for n in skipped) == [f"zz{i:02d}" for i in range(5, 12)]
    assert set(stats) | set(skipped) == set(model.weights)
    assert all(model.weights[n].shape == (STATS_TENSOR,) for n in skipped)
    assert any(n.startswith("statistics skipped: budget (7 of 14") for n in model.notes)


def test_M11_json_container_count_is_capped(tmp_path: Path) -> None:
    body = b'{"class_name": "Sequential", "config": {"layers": [], "x": [' + b"[]," * 500_000
    path = _keras_zip(tmp_path / "lists.keras", body + b"[]]}}")
    with pytest.raises(ModelFormatError, match="JSON objects and arrays"):
        keras_file.load(path)


# --- M12: malformed configs give typed errors ---------------------------------------------


def _functional(**dense_inbound: Any) -> dict[str, Any]:
    history = dense_inbound.get("history", ["in", 0, 0])
    tensor = {"class_name": "__keras_tensor__", "config": {"keras_history": history}}
    return {
        "class_name": "Functional",
        "config": {
            "name": "f",
            "layers": [
                {"class_name": "InputLayer", "name": "in", "config": {"batch_shape": [None, 4]}},
                {
                    "class_name": "Dense",
                    "name": "d",
                    "config": dense_inbound.get("config", {"name": "d", "units": 2}),
                    "inbound_nodes": [{"args": [tensor], "kwargs": {}}],
                },
            ],
        },
    }


@pytest.mark.parametrize("history", [["in", 0, -1], ["in", -3, 0], ["in", 0, 5], ["nope", 0, 0]])
def test_M12_bad_inbound_references_are_format_errors(history: list[Any]) -> None:
    with pytest.raises(ModelFormatError, match="negative|output #5|no earlier layer"):
        KerasConfigParser().parse(_functional(history=history))


@pytest.mark.parametrize("bad", ["a string", 3, ["units", 2]])
def test_M12_layer_config_that_is_not_an_object_is_a_format_error(bad: Any) -> None:
    with pytest.raises(ModelFormatError, match="config must be an object"):
        KerasConfigParser().parse(_functional(config=bad))


# A Keras 3 config as keras writes it (trimmed): functional, nested Sequential, merges.
def _tensor(src: str, shape: list[Any]) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": shape, "dtype": "float32", "keras_history": [src, 0, 0]},
    }


def _l(cls: str, name: str, srcs: list[str], shape: list[Any], **cfg: Any) -> dict[str, Any]:
    args: Any = [_tensor(s, shape) for s in srcs]
    return {
        "module": "keras.layers",
        "class_name": cls,
        "config": {"name": name, "trainable": True, "dtype": "float32", **cfg},
        "registered_name": None,
        "build_config": {"input_shape": shape},
        "name": name,
        "inbound_nodes": [{"args": args if len(args) == 1 else [args], "kwargs": {}}],
    }


REAL = {
    "module": "keras.src.models.functional",
    "class_name": "Functional",
    "config": {
        "name": "net",
        "trainable": True,
        "layers": [
            {
                "module": "keras.layers",
                "class_name": "InputLayer",
                "config": {"batch_shape": [None, 8, 8, 3], "dtype": "float32", "name": "x"},
                "name": "x",
                "inbound_nodes": [],
            },
            _l("ZeroPadding2D", "pad", ["x"], [None, 8, 8, 3], padding=[[1, 1], [1, 1]]),
            _l(
                "Conv2D",
                "conv",
                ["pad"],
                [None, 10, 10, 3],
                filters=4,
                kernel_size=[3, 3],
                strides=[1, 1],
                padding="valid",
                groups=1,
                use_bias=True,
            ),  # fmt: skip
            _l("BatchNormalization", "bn", ["conv"], [None, 8, 8, 4], axis=-1),
            _l(
                "DepthwiseConv2D",
                "dw",
                ["bn"],
                [None, 8, 8, 4],
                kernel_size=[3, 3],
                padding="same",
                depth_multiplier=1,
            ),  # fmt: skip
            _l("Add", "add", ["bn", "dw"], [None, 8, 8, 4]),
            {
                "module": "keras",
                "class_name": "Sequential",
                "config": {
                    "name": "head",
                    "layers": [
                        {"class_name": "InputLayer", "config": {"batch_shape": [None, 8, 8, 4]}},
                        _l("GlobalAveragePooling2D", "gap", [], [None, 8, 8, 4]),
                        _l("Dense", "fc", [], [None, 4], units=3),
                    ],
                },
                "name": "head",
                "inbound_nodes": [{"args": [_tensor("add", [None, 8, 8, 4])], "kwargs": {}}],
            },
        ],
        "input_layers": ["x", 0, 0],
        "output_layers": ["head", 0, 0],
    },
}

_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([-1, 0, 1, 2, 3, -(2**31), 2**31, 2**63]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
    st.sampled_from(["same", "valid", "causal", "channels_first", "Sequential", "Dense"]),
)
_json = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(x: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(x, dict):
        for k, v in x.items():
            out += _paths(v, (*path, k))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            out += _paths(v, (*path, i))
    return out


_REAL_PATHS = _paths(REAL)[1:]


def _mutate(config: Any, path: tuple[Any, ...], how: str, value: Any) -> Any:
    config = copy.deepcopy(config)
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if how == "delete":
        del parent[key]
    elif how == "duplicate" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
    else:
        parent[key] = value
    return config


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(
        st.tuples(
            st.sampled_from(_REAL_PATHS), st.sampled_from(["set", "delete", "duplicate"]), _json
        ),
        min_size=1,
        max_size=3,
    )
)
def test_M12_mutated_configs_raise_only_typed_errors(
    mutations: list[tuple[tuple[Any, ...], str, Any]],
) -> None:
    config: Any = REAL
    for path, how, value in mutations:
        try:
            config = _mutate(config, path, how, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    try:
        parsed = keras_file.parse_config(json.dumps(config))
        graph = KerasConfigParser().parse(parsed)
        aggregate(graph)
        str(summary_from_graph(graph))
    except (ModelFormatError, UnsafeModelError):
        pass


def test_M12_the_unmutated_config_parses() -> None:
    """The fuzz seed is a valid model: mutations start from something that loads."""
    graph = KerasConfigParser().parse(REAL)
    assert graph.node("head/fc").outputs[0].shape == (None, 3)
    assert summary_from_graph(graph).total_params == (27 * 4 + 4) + 16 + (9 * 4 + 4) + 15


def test_M12_malformed_weights_file_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(ModelFormatError):
        keras_file.load(path)
    z = tmp_path / "m.keras"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("config.json", json.dumps(CONFIG))
        f.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert any("weights not read" in n for n in keras_file.load(z).notes)


def test_M12_unreadable_zip_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "cut.keras"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("config.json", json.dumps(CONFIG))
    path.write_bytes(buf.getvalue()[:-30])
    with pytest.raises(ModelFormatError):
        keras_file.load(path)
