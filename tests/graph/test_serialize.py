"""Graph JSON: round trip, strict JSON, versioning."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepscope.errors import ModelFormatError
from deepscope.graph.ir import SCHEMA_VERSION, Edge, Graph, GroupStats, Node, ParamRef, TensorMeta
from deepscope.graph.serialize import from_dict, from_json, to_dict, to_json

names = st.text(min_size=1, max_size=8)
shapes = st.none() | st.tuples(*[st.none() | st.integers(0, 64)] * 2)
metas = st.builds(TensorMeta, shape=shapes, dtype=st.none() | st.sampled_from(["float32", "int64"]))
params = st.builds(
    ParamRef,
    name=names,
    shape=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    dtype=st.just("float32"),
    trainable=st.booleans(),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(names, children, max_size=3),
    max_leaves=8,
)
nodes = st.builds(
    Node,
    id=names,
    op=names,
    label=st.text(max_size=10),
    namespace=st.text(max_size=10),
    attrs=st.dictionaries(names, json_values, max_size=3),
    inputs=st.lists(metas, max_size=3),
    outputs=st.lists(metas, max_size=3),
    params=st.lists(params, max_size=2),
    macs=st.integers(0, 2**50),
)
edges = st.builds(
    Edge,
    src=names,
    dst=names,
    src_output=st.integers(0, 5),
    dst_input=st.integers(0, 5),
    tensor=st.none() | metas,
)
groups = st.builds(
    GroupStats,
    namespace=names,
    module_type=names,
    params=st.integers(0, 10**9),
    trainable_params=st.integers(0, 10**9),
    frozen_params=st.integers(0, 10**9),
    macs=st.integers(0, 10**12),
    op_count=st.integers(0, 10**6),
    output_shapes=st.lists(shapes, max_size=2),
)
overlay_vals = st.none() | st.floats(allow_nan=False)
graphs = st.builds(
    Graph,
    nodes=st.lists(nodes, max_size=5),
    edges=st.lists(edges, max_size=5),
    inputs=st.lists(names, max_size=2),
    outputs=st.lists(names, max_size=2),
    groups=st.dictionaries(names, groups, max_size=3),
    overlays=st.dictionaries(names, st.dictionaries(names, overlay_vals, max_size=3), max_size=2),
    meta=st.dictionaries(names, json_values, max_size=3),
)


@settings(max_examples=150, deadline=None)
@given(graphs)
def test_round_trip_preserves_every_field(graph: Graph) -> None:
    text = to_json(graph)
    assert from_json(text) == graph
    assert from_dict(json.loads(text)) == graph


def test_wire_keys_are_camel_case_with_schema_version() -> None:
    g = Graph(
        nodes=[Node("a", "linear")],
        edges=[Edge("a", "b", src_output=1, dst_input=2)],
        groups={"": GroupStats("", module_type="Net", trainable_params=3, op_count=1)},
    )
    d = to_dict(g)
    assert d["schemaVersion"] == SCHEMA_VERSION
    assert set(d["edges"][0]) == {"src", "dst", "srcOutput", "dstInput", "tensor"}
    assert {"moduleType", "trainableParams", "frozenParams", "opCount", "outputShapes"} <= set(
        d["groups"][""]
    )
    assert "src_output" not in json.dumps(d)


def test_non_finite_values_are_strict_json_and_come_back() -> None:
    g = Graph(
        nodes=[Node("a", "relu", attrs={"eps": math.inf})],
        overlays={"grad": {"a": math.nan, "b": -math.inf, "c": None, "d": 1.5}},
        meta={"x": [math.nan]},
    )
    text = to_json(g)
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict literal {c}"))
    back = from_json(text)
    assert math.isnan(back.overlays["grad"]["a"] or 0.0)
    assert back.overlays["grad"]["b"] == -math.inf
    assert back.overlays["grad"]["c"] is None and back.overlays["grad"]["d"] == 1.5
    assert back.nodes[0].attrs["eps"] == math.inf
    assert math.isnan(back.meta["x"][0])
    assert '{"nonfinite":"nan"}' in text


def test_newer_schema_is_refused_with_upgrade_hint() -> None:
    d = to_dict(Graph())
    d["schemaVersion"] = SCHEMA_VERSION + 1
    with pytest.raises(ModelFormatError, match="upgrade deepscope"):
        from_dict(d)


@pytest.mark.parametrize("bad", ["[]", "{}", '{"schemaVersion": "1"}', "not json"])
def test_malformed_documents_raise_model_format_error(bad: str) -> None:
    with pytest.raises(ModelFormatError):
        from_json(bad)


def test_malformed_node_raises_model_format_error() -> None:
    with pytest.raises(ModelFormatError, match="malformed"):
        from_dict({"schemaVersion": 1, "nodes": [{"op": "relu"}]})


def test_non_json_attr_is_a_type_error_naming_the_value() -> None:
    with pytest.raises(TypeError, match="object"):
        to_json(Graph(nodes=[Node("a", "x", attrs={"bad": object()})]))
