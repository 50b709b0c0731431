"""The graph hierarchy index on a synthetic 20k-node graph and in `deepscope view` mode."""

from __future__ import annotations

import math

from server_support import BASE, small_graph, strict_loads
from starlette.testclient import TestClient

from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta
from deepscope.server.app import Settings, create_app
from deepscope.server.graph_index import MAX_LEVEL_NODES, GraphIndex


def wide_graph(blocks: int = 40, per_block: int = 500, flat: int = 6000) -> Graph:
    """`blocks` groups of `per_block` chained ops, plus `flat` top-level ops (20k+ nodes)."""
    t = TensorMeta((8,), "float32")
    nodes: list[Node] = [Node("in", "input", outputs=[t])]
    edges: list[Edge] = []
    prev = "in"
    for b in range(blocks):
        for i in range(per_block):
            nid = f"b{b}.op{i}"
            params = [ParamRef(f"blocks.{b}.w{i}", (2, 2), "float32")] if i == 0 else []
            nodes.append(Node(nid, "linear" if i == 0 else "relu", namespace=f"blocks/{b}",
                              outputs=[t], params=params, macs=4))  # fmt: skip
            edges.append(Edge(prev, nid, tensor=t))
            prev = nid
    for i in range(flat):
        nodes.append(Node(f"flat{i}", "add", outputs=[t]))
        edges.append(Edge(prev, f"flat{i}"))
    g = Graph(nodes=nodes, edges=edges, inputs=["in"], outputs=[prev])
    g.set_overlay("act_mean", {"b3.op7": math.inf, "b4.op1": 2.0, "b4.op2": 5.0})
    return g


def test_levels_of_a_20k_node_graph() -> None:
    g = wide_graph()
    assert len(g.nodes) > 20_000
    index = GraphIndex(g)
    top = index.level("")
    assert top["truncated"] is True and len(top["nodes"]) == MAX_LEVEL_NODES
    assert [n["id"] for n in top["nodes"][:2]] == ["ns:blocks", "in"]
    blocks = index.level("blocks")
    assert len(blocks["nodes"]) == 40 and blocks["truncated"] is False
    chain = {(e["src"], e["dst"]) for e in blocks["edges"]}
    assert chain == {(f"ns:blocks/{b}", f"ns:blocks/{b + 1}") for b in range(39)}
    b4 = next(n for n in blocks["nodes"] if n["id"] == "ns:blocks/4")
    assert b4["childCount"] == 500 and b4["opCount"] == 500 and b4["params"] == 4
    assert b4["macs"] == 2000 and b4["overlays"] == {"act_mean": 5.0}
    b3 = next(n for n in blocks["nodes"] if n["id"] == "ns:blocks/3")
    assert b3["overlays"] == {"act_mean": math.inf}
    inner = index.level("blocks/7")
    assert [n["id"] for n in inner["nodes"]][:2] == ["b7.op0", "b7.op1"]
    assert len(inner["nodes"]) == 500 and len(inner["edges"]) == 499
    assert {"in", "ns:blocks"} <= {n["id"] for n in top["nodes"]}
    assert ("in", "ns:blocks") in {(e["src"], e["dst"]) for e in top["edges"]}


def test_search_of_a_20k_node_graph_is_limited() -> None:
    index = GraphIndex(wide_graph())
    matches = index.search("LINEAR", limit=25)
    assert len(matches) == 25 and all(m["op"] == "linear" for m in matches)
    assert index.search("blocks/39")[0]["id"] == "ns:blocks/39"
    assert index.search("") == []


def test_view_mode_serves_the_model_graph() -> None:
    app = create_app(Settings(model_graph=small_graph()))
    with TestClient(app, base_url=BASE) as client:
        assert strict_loads(client.get("/api/health").text)["mode"] == "model"
        assert strict_loads(client.get("/api/runs").text) == {"runs": [], "total": 0}
        level = strict_loads(client.get("/api/graph/level?model=1&namespace=features").text)
        assert [n["id"] for n in level["nodes"]] == ["ns:features/conv", "ns:features/act"]
        whole = strict_loads(client.get("/api/graph?model=1").text)
        assert len(whole["nodes"]) == 5
        search = strict_loads(client.get("/api/graph/search?model=1&q=relu").text)
        assert [m["id"] for m in search["matches"]] == ["relu"]
        assert client.get("/api/scalars?run=alpha&tag=x").status_code == 404
