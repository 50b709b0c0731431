"""Hostile files through the lazy path (`open_tensors`, `deepscope.weights`): the checks of
the eager loaders hold (M1, M7, M9, M12); only typed errors escape."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import deepscope
from deepscope.analysis.weights.lazy import open_tensors
from deepscope.errors import ModelFormatError, UnsafeModelError
from deepscope.sources import safetensors_file
from deepscope.sources.onnx_file import ExternalDataError


def _st(path: Path, header: dict[str, Any], data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _e(shape: list[int], off: list[int], dtype: str = "F32") -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": off}


@pytest.mark.parametrize(
    ("header", "data", "error", "words"),
    [
        ({"a": _e([2], [8, 16])}, b"\0" * 8, safetensors_file.OffsetError, "past the end"),
        (
            {"a": _e([2], [0, 8]), "b": _e([2], [4, 12])},
            b"\0" * 12,
            safetensors_file.OffsetError,
            "overlap",
        ),
        (
            {"a": _e([4194305, 4194305, 211106198978564], [0, 8])},
            b"\0" * 8,
            safetensors_file.TensorEntryError,
            "2\\*\\*62|more bytes than the file",
        ),
        ({"a": _e([2], [8, 0])}, b"\0" * 8, safetensors_file.OffsetError, "before begin"),
    ],
    ids=["past-end", "overlap", "u64-overflow", "end-before-begin"],
)
def test_bad_safetensors_offsets_give_a_clear_format_error(
    tmp_path: Path, header: dict[str, Any], data: bytes, error: type, words: str
) -> None:
    path = _st(tmp_path / "bad.safetensors", header, data)
    for call in (deepscope.weights, open_tensors):
        with pytest.raises(error, match=words) as e:
            call(path)
        assert isinstance(e.value, ModelFormatError) and "tensor '" in str(e.value)


def test_a_file_truncated_after_opening_is_a_format_error_not_a_crash(tmp_path: Path) -> None:
    x = np.ones(300_000, np.float32)
    path = _st(tmp_path / "m.safetensors", {"x": _e([300_000], [0, x.nbytes])}, x.tobytes())
    w = deepscope.weights(path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 4096)
    with pytest.raises(ModelFormatError, match="truncated after it was opened"):
        w.stats()


# --- ONNX external data (M7) ---------------------------------------------------------


def _onnx_external(model_dir: Path, location: str) -> Path:
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    t.data_location = TensorProto.EXTERNAL
    t.external_data.add(key="location", value=location)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [t],
    )
    model_dir.mkdir(exist_ok=True)
    path = model_dir / "m.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


@pytest.mark.parametrize("where", ["dotdot", "sub-dotdot", "absolute", "symlink"])
def test_onnx_external_data_outside_the_folder_is_refused_before_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x01" * 16)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    os.symlink(secret, model_dir / "link.bin")
    location = {
        "dotdot": "../secret.bin",
        "sub-dotdot": "sub/../../secret.bin",
        "absolute": str(secret),
        "symlink": "link.bin",
    }[where]
    path = _onnx_external(model_dir, location)
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(
        os, "open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1]
    )
    for call in (open_tensors, deepscope.weights):
        with pytest.raises(ExternalDataError, match="model's folder|symbolic link") as e:
            call(path)
        assert isinstance(e.value, UnsafeModelError)
    assert opened and not any(p.endswith(("secret.bin", "link.bin")) for p in opened)


def test_onnx_raw_data_shorter_than_its_shape_is_a_format_error(tmp_path: Path) -> None:
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4], raw_data=b"\0" * 12)
    graph = helper.make_graph([], "g", [], [], [t])
    path = tmp_path / "m.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ModelFormatError, match="holds 12 bytes"):
        open_tensors(path)


def test_onnx_wire_mutations_give_only_typed_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "a"),
        helper.make_tensor("b", TensorProto.INT64, [3], [1, 2, 3]),
        helper.make_tensor("c", TensorProto.BFLOAT16, [2], b"\0\0\0\0", raw=True),
    ]
    graph = helper.make_graph([], "g", [], [], inits)
    good = helper.make_model(graph).SerializeToString()
    path = tmp_path / "m.onnx"
    outcomes = {"ok": 0, "error": 0}
    for i in range(400):
        data = bytearray(good)
        if i % 4 == 0:
            data = data[: rng.integers(0, len(data))]
        else:
            for _ in range(rng.integers(1, 4)):
                data[rng.integers(0, len(data))] = rng.integers(0, 256)
        path.write_bytes(bytes(data))
        try:
            with open_tensors(path) as store:
                for name in store.names():
                    store.read(name)
            outcomes["ok"] += 1
        except (ModelFormatError, UnsafeModelError):
            outcomes["error"] += 1
    assert outcomes["error"] > 50 and outcomes["ok"] > 10  # both kinds were exercised


# --- pickles (M1) --------------------------------------------------------------------


class _Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


def test_a_pickle_payload_is_refused_by_the_lazy_store(tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    torch.save({"w": torch.ones(2), "x": _Payload(sentinel)}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeModelError, match="system|posix"):
        open_tensors(tmp_path / "evil.pt")
    assert not sentinel.exists()
