"""THREATS.md A (M1-M9): malicious model files, generated here, never run code or escape."""

from __future__ import annotations

import io
import json
import os
import struct
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepscope.errors import ModelFormatError, UnsafeModelError
from deepscope.sources import keras_file, load_model, onnx_file, safetensors_file, state_dict
from deepscope.sources._archive import ArchiveBombError, ArchiveMemberNameError, SafeZip


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "SENTINEL"
    yield path
    assert not path.exists(), "code from a model file ran"


def _walk(root: Path) -> set[str]:
    return {str(p) for p in root.rglob("*")}


class Payload:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.target}",))


# --- M1 / M2: pickle ------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [False, True])
def test_pickle_payload_is_refused_and_named(tmp_path: Path, sentinel: Path, legacy: bool) -> None:
    path = tmp_path / "evil.pt"
    torch.save(
        {"w": torch.zeros(2), "x": Payload(sentinel)},
        path,
        _use_new_zipfile_serialization=not legacy,
    )
    before = _walk(tmp_path)
    with pytest.raises(UnsafeModelError) as e:
        load_model(path)
    assert "system" in str(e.value) and "trust=True" in str(e.value)
    assert _walk(tmp_path) == before


def test_setitem_on_a_list_variant_is_refused(tmp_path: Path, sentinel: Path) -> None:
    import pickle

    raw = bytearray(pickle.dumps([1, 2], protocol=2))
    # EMPTY_LIST ... then SETITEM (b"s") on the list: a weights_only bypass pattern.
    crafted = b"\x80\x02]q\x00K\x00K\x01s."
    path = tmp_path / "setitem.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", crafted)
        z.writestr("archive/version", "3\n")
    assert raw  # the reference pickle is well formed
    with pytest.raises(ModelFormatError):
        load_model(path)


def test_storage_larger_than_its_bytes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "short.pt"
    torch.save({"w": torch.zeros(1000)}, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    data_name = next(n for n in members if n.endswith("data/0"))
    members[data_name] = members[data_name][:16]
    with zipfile.ZipFile(path, "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    with pytest.raises(ModelFormatError):
        state_dict.load(path)


def test_untrusted_loads_never_disable_weights_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    real = torch.load

    def spy(*a: Any, **k: Any) -> Any:
        seen.append(k.get("weights_only"))
        return real(*a, **k)

    monkeypatch.setattr(torch, "load", spy)
    path = tmp_path / "ok.pt"
    torch.save({"w": torch.ones(3)}, path)
    load_model(path)
    torch.save({"o": torch.optim.SGD}, tmp_path / "global.pt")
    with pytest.raises(UnsafeModelError):
        load_model(tmp_path / "global.pt")
    assert seen and all(v is True for v in seen)


# --- M4 / M5: Keras ------------------------------------------------------------------


def _keras_zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name), data)
    return path


def test_keras_gadgets_are_only_labels(tmp_path: Path, sentinel: Path) -> None:
    cmd = f"touch {sentinel}"
    config = {
        "class_name": "Sequential",
        "module": "keras",
        "config": {
            "name": "m",
            "layers": [
                {"module": "os", "class_name": "system", "config": {"name": "boom", "args": [cmd]}},
                {
                    "module": "keras.config",
                    "class_name": "enable_unsafe_deserialization",
                    "config": {"name": "unlock"},
                },
                {
                    "module": "keras.layers",
                    "class_name": "Lambda",
                    "config": {
                        "name": "lam",
                        "function": {
                            "class_name": "__lambda__",
                            "config": {"code": "4wEAAAAAAAAA", "defaults": None, "closure": None},
                        },
                    },
                },
            ],
        },
    }
    path = _keras_zip(
        tmp_path / "evil.keras",
        [("config.json", json.dumps(config).encode()), ("metadata.json", b"{}")],
    )
    model = load_model(path)
    assert [n.label for n in model.graph.nodes] == ["boom", "unlock", "lam"]
    assert model.graph.node("boom").attrs["module"] == "os"
    assert any("Lambda layer 'lam'" in note for note in model.notes)
    assert "4wEAAAAAAAAA" not in json.dumps([n.attrs for n in model.graph.nodes])


def test_h5_lambda_with_marshalled_code_is_not_decoded(
    tmp_path: Path, sentinel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64
    import marshal

    h5py = pytest.importorskip("h5py")
    code = compile(f"open({str(sentinel)!r}, 'w')", "x", "exec")
    blob = base64.b64encode(marshal.dumps(code)).decode()
    config = {
        "class_name": "Sequential",
        "config": {
            "name": "m",
            "layers": [
                {
                    "class_name": "Lambda",
                    "config": {
                        "name": "lam",
                        "function": [blob, None, None],
                        "function_type": "lambda",
                    },
                }
            ],
        },
    }
    path = tmp_path / "lambda.h5"
    with h5py.File(path, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config)
    monkeypatch.setattr(marshal, "loads", lambda *a: pytest.fail("marshal.loads called"))
    model = keras_file.load(path)
    assert model.graph.node("lam").attrs["code"] == "not decoded"
    assert any("lam" in n for n in model.notes)


# --- M6: archives ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/abs/x", "C:\\x", "C:/x", "dir\\..\\x"])
def test_escaping_member_names_are_refused(tmp_path: Path, name: str) -> None:
    path = _keras_zip(tmp_path / "t.keras", [("config.json", b"{}"), (name, b"payload")])
    before = _walk(tmp_path.parent)
    with pytest.raises(ArchiveMemberNameError):
        load_model(path)
    assert _walk(tmp_path.parent) == before


def test_duplicate_and_symlink_members_are_refused(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dup = _keras_zip(tmp_path / "d.keras", [("config.json", b"{}"), ("config.json", b"{}")])
    with pytest.raises(ArchiveMemberNameError, match="twice"):
        load_model(dup)
    link = zipfile.ZipInfo("link")
    link.external_attr = 0o120777 << 16
    with zipfile.ZipFile(tmp_path / "l.keras", "w") as z:
        z.writestr("config.json", b"{}")
        z.writestr(link, "/etc")
    with pytest.raises(ArchiveMemberNameError, match="link"):
        load_model(tmp_path / "l.keras")


def test_zip_bomb_stops_at_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("config.json", "w") as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(64):
                f.write(chunk)
    assert path.stat().st_size < 200_000
    with SafeZip(path, member_cap=8 << 20) as z, pytest.raises(ArchiveBombError, match="zip bomb"):
        z.read("config.json")
    # A member that lies about its size is still stopped by the bytes actually read.
    with SafeZip(path, member_cap=1 << 40, total_cap=4 << 20) as z, pytest.raises(ArchiveBombError):
        z.read("config.json")


# --- M7: ONNX external data -----------------------------------------------------------


def _onnx_with_external(tmp_path: Path, entries: dict[str, str]) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    t.data_location = TensorProto.EXTERNAL
    for k, v in entries.items():
        t.external_data.add(key=k, value=v)
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [t],
    )
    model_dir = tmp_path / "model"
    model_dir.mkdir(exist_ok=True)
    path = model_dir / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\x01" * 16)
    return secret


def _opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import builtins

    paths: list[str] = []
    real_open, real_os_open = builtins.open, os.open
    monkeypatch.setattr(
        builtins, "open", lambda f, *a, **k: (paths.append(str(f)), real_open(f, *a, **k))[1]
    )
    monkeypatch.setattr(
        os, "open", lambda f, *a, **k: (paths.append(str(f)), real_os_open(f, *a, **k))[1]
    )
    return paths


@pytest.mark.parametrize(
    "make",
    [
        lambda d, s: {"location": "../secret.bin"},
        lambda d, s: {"location": "sub/../../secret.bin"},
        lambda d, s: {"location": str(s)},
        lambda d, s: {"location": "C:\\secret.bin"},
        lambda d, s: {"location": "w.bin", "length": str(2**62)},
        lambda d, s: {"location": "w.bin", "offset": "-1"},
        lambda d, s: {"location": "w.bin", "basepath": "/etc"},
        lambda d, s: {"location": "link.bin"},
        lambda d, s: {"location": "hard.bin"},
    ],
    ids=[
        "dotdot",
        "sub-dotdot",
        "absolute",
        "drive",
        "length-2**62",
        "negative",
        "unknown-key",
        "symlink",
        "hardlink",
    ],
)
def test_unsafe_external_data_is_refused_before_open(
    tmp_path: Path, outside: Path, monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    path = _onnx_with_external(tmp_path, make(tmp_path, outside))
    (path.parent / "w.bin").write_bytes(b"\0" * 16)
    os.symlink(outside, path.parent / "link.bin")
    os.link(outside, path.parent / "hard.bin")
    opened = _opened(monkeypatch)
    with pytest.raises(onnx_file.ExternalDataError):
        onnx_file.load(path)
    assert not any(p.endswith(("secret.bin", "link.bin", "hard.bin")) for p in opened)
    assert onnx_file.load(path, external_data=False).graph.node("n0").op == "add"


# --- M9: safetensors headers ----------------------------------------------------------


def _st(tmp_path: Path, header: Any, data: bytes = b"", n: int | None = None) -> Path:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = tmp_path / "x.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw) if n is None else n) + raw + data)
    return path


def _entry(
    dtype: str = "F32", shape: list[int] | None = None, off: list[int] | None = None
) -> dict[str, Any]:
    return {
        "dtype": dtype,
        "shape": [2] if shape is None else shape,
        "data_offsets": [0, 8] if off is None else off,
    }


SAFETENSORS_CASES = {
    "n-2**63": (b"{}", b"", 2**63, safetensors_file.HeaderSizeError),
    "n-past-file": (b"{}", b"", 1000, safetensors_file.HeaderSizeError),
    "bad-utf8": (b'{"\xff": 1}', b"", None, safetensors_file.HeaderJSONError),
    "bad-json": (b"{not json", b"", None, safetensors_file.HeaderJSONError),
    "not-brace": (b'["a"]', b"", None, safetensors_file.HeaderJSONError),
    "duplicate": (
        b'{"a": '
        + json.dumps(_entry()).encode()
        + b', "a": '
        + json.dumps(_entry()).encode()
        + b"}",
        b"\0" * 8,
        None,
        safetensors_file.HeaderJSONError,
    ),
    "overlap": (
        {"a": _entry(), "b": _entry(off=[4, 12])},
        b"\0" * 12,
        None,
        safetensors_file.SafetensorsFormatError,
    ),
    "gap": ({"a": _entry(off=[4, 12])}, b"\0" * 12, None, safetensors_file.OffsetError),
    "end-before-begin": ({"a": _entry(off=[8, 0])}, b"\0" * 8, None, safetensors_file.OffsetError),
    "past-eof": (
        {"a": _entry(shape=[4], off=[0, 16])},
        b"\0" * 8,
        None,
        safetensors_file.SafetensorsFormatError,
    ),
    "u64-overflow": (
        {"a": _entry(shape=[4194305, 4194305, 211106198978564], off=[0, 8])},
        b"\0" * 8,
        None,
        safetensors_file.TensorEntryError,
    ),
    "bad-dtype": ({"a": _entry(dtype="F128")}, b"\0" * 8, None, safetensors_file.TensorEntryError),
    "bool-shape": (
        {"a": _entry(shape=[True, 2])},
        b"\0" * 8,
        None,
        safetensors_file.TensorEntryError,
    ),
    "bad-metadata": ({"__metadata__": {"k": 1}}, b"", None, safetensors_file.HeaderJSONError),
    "nan-constant": (b'{"a": NaN}', b"", None, safetensors_file.HeaderJSONError),
    "deep-nesting": (
        b"{" + b'"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b"",
        None,
        safetensors_file.SafetensorsFormatError,
    ),
}


@pytest.mark.parametrize("case", list(SAFETENSORS_CASES))
def test_safetensors_header_abuse_gives_a_clear_error(tmp_path: Path, case: str) -> None:
    header, data, n, error = SAFETENSORS_CASES[case]
    with pytest.raises(error) as e:
        safetensors_file.load(_st(tmp_path, header, data, n))
    assert len(str(e.value)) > 20


def test_safetensors_100k_entries_are_refused_quickly(tmp_path: Path) -> None:
    header = {f"t{i}": _entry(shape=[0], off=[0, 0]) for i in range(100_000)}
    with pytest.raises(safetensors_file.HeaderJSONError, match="items|entries"):
        safetensors_file.load(_st(tmp_path, header))


def _valid_header() -> bytes:
    return json.dumps(
        {
            "a": _entry(),
            "b": _entry(dtype="BF16", shape=[1, 2], off=[8, 12]),
            "__metadata__": {"k": "v"},
        }
    ).encode()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.tuples(st.integers(0, len(_valid_header()) - 1), st.binary(min_size=1, max_size=4)).map(
            lambda m: _valid_header()[: m[0]] + m[1] + _valid_header()[m[0] + len(m[1]) :]
        ),
    )
)
def test_safetensors_fuzz_only_format_errors(raw: bytes) -> None:
    try:
        safetensors_file.parse_header(raw, 8 + len(raw) + 12)
    except ModelFormatError:
        pass


# --- truncated and random bytes, every format ----------------------------------------


@pytest.mark.parametrize(
    "suffix", [".onnx", ".keras", ".safetensors", ".pt", ".pth", ".pt2", ".h5"]
)
@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 7, os.urandom(64), b"PK\x03\x04" + os.urandom(60)]
)
def test_random_bytes_give_a_format_error(tmp_path: Path, suffix: str, content: bytes) -> None:
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(content)
    try:
        model = load_model(path)
    except ModelFormatError:
        return
    assert model.graph.nodes == []  # a few bytes happen to be an empty protobuf


def test_truncated_legit_files_give_a_format_error(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"a": np.ones((64, 64), np.float32)}, str(tmp_path / "a.safetensors"))
    torch.save({"a": torch.ones(64, 64)}, tmp_path / "a.pt")
    for name in ("a.safetensors", "a.pt"):
        p = tmp_path / name
        p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        with pytest.raises(ModelFormatError):
            load_model(p)
    assert isinstance(io.BytesIO(), io.BytesIO)
