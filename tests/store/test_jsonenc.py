"""Strict JSON: no NaN/Infinity literals ever, non-finite floats round-trip by class (N1)."""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepscope.store import jsonenc


def _strict(s: str) -> Any:
    def no_constants(name: str) -> Any:
        raise AssertionError(f"non-strict JSON literal {name} in {s[:80]}")

    return json.loads(s, parse_constant=no_constants)


def _same_class(a: float, b: float) -> bool:
    if math.isnan(a):
        return math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


PAYLOAD_NAN = struct.unpack("<d", struct.pack("<Q", 0x7FF8_0000_0000_0ABC))[0]
NEG_NAN = struct.unpack("<d", struct.pack("<Q", 0xFFF8_0000_0000_0000))[0]


@pytest.mark.parametrize(
    ("value", "marker"),
    [
        (math.nan, "nan"),
        (PAYLOAD_NAN, "nan"),
        (NEG_NAN, "nan"),
        (math.inf, "+inf"),
        (-math.inf, "-inf"),
    ],
)
def test_non_finite_floats_become_markers_and_come_back(value: float, marker: str) -> None:
    s = jsonenc.dumps({"v": value, "nested": [value, {"x": value}]})
    assert "NaN" not in s and "Infinity" not in s
    parsed = _strict(s)
    assert parsed["v"] == {"nonfinite": marker}
    back = jsonenc.loads(s)
    assert _same_class(back["v"], value)
    assert _same_class(back["nested"][1]["x"], value)


@pytest.mark.parametrize(
    "value", [-0.0, 0.0, 5e-324, -5e-324, 1e308, -1e308, 2.2250738585072014e-308]
)
def test_extreme_finite_floats_round_trip_bit_exact(value: float) -> None:
    back = jsonenc.loads(jsonenc.dumps([value]))[0]
    assert struct.pack("<d", back) == struct.pack("<d", value)


@given(
    st.recursive(
        st.floats(),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
        max_leaves=20,
    )
)
def test_any_structure_of_floats_is_strict_and_round_trips(obj: Any) -> None:
    s = jsonenc.dumps(obj)
    _strict(s)

    def check(a: Any, b: Any) -> None:
        if isinstance(a, float):
            assert _same_class(a, b)
        elif isinstance(a, list):
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                check(x, y)
        else:
            assert a.keys() == b.keys()
            for k in a:
                check(a[k], b[k])

    check(obj, jsonenc.loads(s))


def test_numpy_scalars_and_arrays_of_every_float_width() -> None:
    arr = np.array([1.5, np.nan, np.inf, -np.inf, -0.0], dtype=np.float16)
    s = jsonenc.dumps({"a": arr, "s": np.float32("nan"), "i": np.int64(7), "b": np.bool_(True)})
    _strict(s)
    back = jsonenc.loads(s)
    assert back["i"] == 7 and back["b"] is True and math.isnan(back["s"])
    assert [float_class(x) for x in back["a"]] == ["finite", "nan", "+inf", "-inf", "finite"]
    assert math.copysign(1.0, back["a"][4]) == -1.0


def float_class(x: float) -> str:
    return jsonenc.float_class(x)


def test_torch_tensors_including_bf16_encode_as_lists() -> None:
    torch = pytest.importorskip("torch")
    t = torch.tensor([1.0, float("nan"), float("inf")], dtype=torch.bfloat16)
    back = jsonenc.loads(jsonenc.dumps({"t": t, "z": torch.tensor(2.5, dtype=torch.float16)}))
    assert back["t"][0] == 1.0 and math.isnan(back["t"][1]) and back["t"][2] == math.inf
    assert back["z"] == 2.5


@dataclass
class _Point:
    step_count: int
    sum_sq: float


def test_dataclasses_and_camel_case_keys() -> None:
    assert jsonenc.dumps(_Point(3, math.inf)) == '{"step_count":3,"sum_sq":{"nonfinite":"+inf"}}'
    assert jsonenc.camel({"first_step": 1, "p": _Point(1, 2.0)}) == {
        "firstStep": 1,
        "p": {"stepCount": 1, "sumSq": 2.0},
    }


def test_loads_rejects_nan_literals_and_dumps_rejects_unknown_types() -> None:
    with pytest.raises(ValueError, match="strict"):
        jsonenc.loads('{"x": NaN}')
    with pytest.raises(TypeError, match="blob"):
        jsonenc.dumps({"x": b"bytes"})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        jsonenc.dumps({"x": object()})
    with pytest.raises(ValueError, match="nested"):
        deep: Any = []
        for _ in range(300):
            deep = [deep]
        jsonenc.dumps(deep)


def test_graph_json_and_store_json_are_one_codec() -> None:
    """A graph document and a store record carry non-finite values the same way, both ways:
    the graph reads what the store wrote and the store reads what the graph wrote."""
    from deepscope.graph.ir import Graph, Node
    from deepscope.graph.serialize import decode_value, from_json, to_json

    value = {"a": [math.nan, -math.inf, {"b": math.inf}], "n": -0.0, "k": {"nonfinite": 1}}
    back = decode_value(json.loads(jsonenc.dumps(value)))
    assert math.isnan(back["a"][0]) and back["a"][1] == -math.inf and back["a"][2]["b"] == math.inf
    assert math.copysign(1.0, back["n"]) == -1.0
    assert back["k"] == {"nonfinite": 1}  # not a marker: kept as the dict it is
    assert jsonenc.decode(json.loads(jsonenc.dumps(value)))["a"][1] == -math.inf

    g = Graph(nodes=[Node("a", "relu", attrs={"eps": -math.inf})], meta={"m": [math.nan]})
    doc = jsonenc.loads(to_json(g))
    assert doc["nodes"][0]["attrs"] == {"eps": -math.inf} and math.isnan(doc["meta"]["m"][0])
    assert from_json(jsonenc.dumps(doc)).nodes[0].attrs["eps"] == -math.inf
