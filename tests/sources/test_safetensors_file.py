"""safetensors: our header reader against files written by the reference library."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from deepscope.errors import ModelFormatError
from deepscope.sources import safetensors_file as st


def test_round_trip_with_reference_writer(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    tensors = {
        "encoder.layer.0.weight": rng.normal(size=(8, 5)).astype(np.float32),
        "encoder.layer.0.bias": rng.normal(size=(8,)).astype(np.float64),
        "head.idx": np.arange(7, dtype=np.int64),
        "flag": np.array([True, False]),
    }
    path = tmp_path / "m.safetensors"
    save_file(tensors, str(path), metadata={"format": "np"})
    assert st.match(path) and not st.match(tmp_path / "m.pt")
    model = st.load(path)
    assert model.format == "safetensors"
    assert set(model.weights) == set(tensors)
    for name, arr in tensors.items():
        w = model.weights[name]
        assert w.shape == arr.shape
        np.testing.assert_array_equal(w.values, arr)
    assert model.graph.meta["metadata"] == {"format": "np"}
    node = model.graph.node("encoder.layer.0.weight")
    assert node.namespace == "encoder/layer/0"
    assert node.params[0].numel == 40
    stats = node.attrs["stats"]
    w = tensors["encoder.layer.0.weight"]
    assert stats["count"] == 40
    assert stats["mean"] == pytest.approx(float(w.mean()), rel=1e-6)
    assert stats["std"] == pytest.approx(float(w.std()), rel=1e-5)
    assert stats["min"] == pytest.approx(float(w.min()))


def test_bfloat16_and_float8_read_as_numbers(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    x = torch.tensor([1.5, -2.0, 0.25, 3.0])
    path = tmp_path / "b.safetensors"
    save_file(
        {"b": x.bfloat16(), "f8": x.to(torch.float8_e4m3fn), "f5": x.to(torch.float8_e5m2)},
        str(path),
    )
    model = st.load(path)
    assert model.weights["b"].dtype == "bfloat16"
    f = st.SafetensorsFile(path)
    for name in ("b", "f8", "f5"):
        np.testing.assert_allclose(f.array(name), x.numpy())


def test_nan_inf_empty_and_scalar_tensors_are_accepted(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    path = tmp_path / "odd.safetensors"
    save_file(
        {
            "nonfinite": np.array([1.0, np.nan, np.inf, -np.inf, 3.0], dtype=np.float32),
            "empty": np.zeros((3, 0, 5), dtype=np.float16),
            "scalar": np.array(2.5, dtype=np.float32),
        },
        str(path),
    )
    model = st.load(path)
    s = {n.id: n.attrs["stats"] for n in model.graph.nodes}
    assert s["nonfinite"] == {
        "count": 5,
        "min": 1.0,
        "max": 3.0,
        "mean": 2.0,
        "std": 1.0,
        "n_nan": 1,
        "n_inf": 2,
    }
    assert s["empty"]["count"] == 0 and s["empty"]["mean"] is None
    assert s["scalar"]["count"] == 1 and s["scalar"]["max"] == 2.5
    assert model.weights["scalar"].shape == ()


def test_values_are_memory_mapped_not_copied(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    big = np.arange(300_000, dtype=np.float32)
    path = tmp_path / "big.safetensors"
    save_file({"big": big}, str(path))
    default = st.load(path)
    assert default.weights["big"].values is None  # large: not loaded unless asked
    lazy = st.load(path, values=True).weights["big"].values
    assert lazy is not None
    assert not lazy.flags.owndata and not lazy.flags.writeable
    assert float(lazy[123_456]) == 123_456.0


def test_chunked_stats_equal_whole_array_stats(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(1)
    a = rng.normal(3.0, 2.0, size=10_001).astype(np.float64)
    path = tmp_path / "c.safetensors"
    save_file({"a": a}, str(path))
    s = st.SafetensorsFile(path).stats("a", chunk=1000)
    assert s["mean"] == pytest.approx(a.mean(), rel=1e-12)
    assert s["std"] == pytest.approx(a.std(), rel=1e-9)


def test_padded_header_is_accepted(tmp_path: Path) -> None:
    header = json.dumps({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "p.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + np.array([1, 2], "<f4").tobytes())
    np.testing.assert_array_equal(st.load(path).weights["x"].values, [1, 2])


# --- M12: malformed headers give ModelFormatError only ------------------------------------


def _file(path: Path, header: object, data: bytes) -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


@pytest.mark.parametrize(
    "shape, reason",
    [
        ([0, 2**64], "past 2\\*\\*63"),
        ([0, 2**62], "more than 2\\*\\*62 bytes"),
        ([0, 2**40, 2**40], "more than 2\\*\\*62 bytes"),
    ],
)
def test_M12_empty_tensors_with_impossible_shapes_give_the_reason(
    tmp_path: Path, shape: list[int], reason: str
) -> None:
    header = {"a": {"dtype": "F32", "shape": shape, "data_offsets": [0, 0]}}
    with pytest.raises(st.TensorEntryError, match=reason):
        st.load(_file(tmp_path / "x.safetensors", header, b""))


_INTS = hs.one_of(
    hs.integers(-3, 8),
    hs.sampled_from([0, 2**31, 2**32, 2**53, 2**62, 2**63, 2**64, 2**64 + 1, 10**30]),
)
_ENTRY = hs.fixed_dictionaries(
    {
        "dtype": hs.sampled_from([*st.DTYPES, "F128", "", "f32"]),
        "shape": hs.lists(_INTS, max_size=4),
        "data_offsets": hs.one_of(hs.just([0, 0]), hs.lists(_INTS, min_size=1, max_size=3)),
    }
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=hs.dictionaries(hs.sampled_from(["a", "b", "__metadata__"]), _ENTRY, max_size=3),
    data=hs.one_of(hs.just(b""), hs.binary(max_size=24)),
)
def test_M12_mutated_headers_give_only_format_errors(
    tmp_path: Path, header: dict[str, object], data: bytes
) -> None:
    path = _file(tmp_path / "f.safetensors", header, data)
    try:
        model = st.load(path)
    except ModelFormatError:
        return
    for name, w in model.weights.items():  # accepted: every tensor is readable
        assert w.values is not None and w.values.shape == w.shape, name


def test_M12_cli_prints_the_reason_not_a_traceback(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from deepscope.cli import main

    header = {"a": {"dtype": "F32", "shape": [0, 2**64], "data_offsets": [0, 0]}}
    path = _file(tmp_path / "bad.safetensors", header, b"")
    result = CliRunner().invoke(main, ["summary", str(path)])
    assert result.exit_code == 1
    assert "past 2**63" in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
