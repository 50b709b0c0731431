"""Aggregates per namespace prefix and collapsing to a depth."""

from __future__ import annotations

from deepscope.graph.aggregate import aggregate, prefixes
from deepscope.graph.collapse import collapse
from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta


def _t(*shape: int) -> TensorMeta:
    return TensorMeta(shape=tuple(shape), dtype="float32")


def _graph() -> Graph:
    shared = ParamRef("block.fc.weight", (4, 4), "float32")
    frozen = ParamRef("head.weight", (2, 4), "float32", trainable=False)
    nodes = [
        Node("x", "input", outputs=[_t(1, 4)]),
        Node(
            "fc1",
            "linear",
            namespace="block/fc",
            inputs=[_t(1, 4)],
            outputs=[_t(1, 4)],
            params=[shared],
            macs=16,
        ),
        Node("act", "relu", namespace="block", inputs=[_t(1, 4)], outputs=[_t(1, 4)], macs=0),
        Node(
            "fc2",
            "linear",
            namespace="block/fc",
            inputs=[_t(1, 4)],
            outputs=[_t(1, 4)],
            params=[shared],
            macs=16,
        ),
        Node(
            "head",
            "linear",
            namespace="head",
            inputs=[_t(1, 4)],
            outputs=[_t(1, 2)],
            params=[frozen],
            macs=8,
        ),
        Node("out", "output", inputs=[_t(1, 2)], outputs=[_t(1, 2)]),
    ]
    edges = [
        Edge("x", "fc1", tensor=_t(1, 4)),
        Edge("fc1", "act", tensor=_t(1, 4)),
        Edge("act", "fc2", tensor=_t(1, 4)),
        Edge("fc2", "head", tensor=_t(1, 4)),
        Edge("head", "out", tensor=_t(1, 2)),
    ]
    return Graph(
        nodes, edges, inputs=["x"], outputs=["out"], meta={"moduleTypes": {"block": "Block"}}
    )


def test_prefixes() -> None:
    assert prefixes("") == [""]
    assert prefixes("a/b") == ["", "a", "a/b"]


def test_shared_parameter_counts_once_and_frozen_split() -> None:
    stats = aggregate(_graph())
    assert stats[""].params == 16 + 8
    assert stats[""].trainable_params == 16 and stats[""].frozen_params == 8
    assert stats["block"].params == 16 and stats["block/fc"].params == 16
    assert stats["head"].frozen_params == 8


def test_macs_and_op_counts_exclude_pseudo_ops() -> None:
    stats = aggregate(_graph())
    assert stats[""].macs == 40 and stats[""].op_count == 4
    assert stats["block"].macs == 32 and stats["block"].op_count == 3
    assert stats["block/fc"].op_count == 2
    assert stats["block"].module_type == "Block"


def test_output_shapes_are_tensors_leaving_the_group() -> None:
    stats = aggregate(_graph())
    assert stats["block"].output_shapes == [(1, 4)]  # only fc2 -> head leaves the block
    assert stats["block/fc"].output_shapes == [(1, 4), (1, 4)]  # fc1 -> act, fc2 -> head
    assert stats["head"].output_shapes == [(1, 2)]
    assert stats[""].output_shapes == [(1, 2)]


def test_collapse_depth_one_joins_groups_with_consistent_edges() -> None:
    g = _graph()
    c = collapse(g, 1)
    assert [n.id for n in c.nodes] == ["x", "ns:block", "ns:head", "out"]
    assert [(e.src, e.dst) for e in c.edges] == [
        ("x", "ns:block"),
        ("ns:block", "ns:head"),
        ("ns:head", "out"),
    ]
    by_id = {n.id: n for n in c.nodes}
    for e in c.edges:
        assert by_id[e.src].outputs[e.src_output] == e.tensor == by_id[e.dst].inputs[e.dst_input]
    block = by_id["ns:block"]
    assert block.macs == 32 and block.attrs["params"] == 16 and block.attrs["moduleType"] == "Block"


def test_collapse_depth_two_keeps_shallow_nodes() -> None:
    c = collapse(_graph(), 2)
    ids = [n.id for n in c.nodes]
    assert "act" in ids and "ns:block/fc" in ids and "ns:head" not in ids and "head" in ids
    # fc1 -> act and act -> fc2 both cross the border of block/fc
    assert ("ns:block/fc", "act") in [(e.src, e.dst) for e in c.edges]
    assert ("act", "ns:block/fc") in [(e.src, e.dst) for e in c.edges]


def test_aggregate_scales_linearly_to_100k_nodes() -> None:
    nodes = []
    edges = []
    for i in range(100_000):
        ns = f"s{i // 10000}/b{i // 1000}/l{i // 100}/m{i // 10}"
        p = ParamRef(f"{ns}.w", (3,), "float32")
        nodes.append(Node(f"n{i}", "linear", namespace=ns, params=[p], macs=1, outputs=[_t(1)]))
        if i:
            edges.append(Edge(f"n{i - 1}", f"n{i}", tensor=_t(1)))
    stats = aggregate(Graph(nodes, edges))
    assert stats[""].op_count == 100_000 and stats[""].macs == 100_000
    assert stats[""].params == 3 * 10_000
    assert stats["s0"].output_shapes == [(1,)]
