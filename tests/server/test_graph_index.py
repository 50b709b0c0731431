"""The graph hierarchy index on a synthetic 20k-node graph and in `deepscope view` mode."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from server_support import BASE, small_graph, strict_loads
from starlette.testclient import TestClient

from deepscope.errors import ModelFormatError
from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta
from deepscope.graph.serialize import to_json
from deepscope.server.app import Settings, create_app
from deepscope.server.graph_index import MAX_LEVEL_NODES, GraphIndex, encode_level


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


def ports_graph() -> Graph:
    """x -> enc/a (a1, a2) -> enc/b (b1, z) and enc (b2) -> head (h) -> out; `z` is an input."""
    t = TensorMeta((1, 2), "float32")
    nodes = [Node("x", "input", outputs=[t]), Node("a1", "linear", namespace="enc/a"),
             Node("a2", "relu", namespace="enc/a"), Node("b1", "add", namespace="enc/b"),
             Node("z", "input", namespace="enc/b"), Node("b2", "mul", namespace="enc"),
             Node("h", "linear", namespace="head"), Node("out", "output")]  # fmt: skip
    pairs = [("x", "a1"), ("a1", "a2"), ("a2", "b1"), ("x", "b1"), ("a2", "h"), ("a1", "b2"),
             ("b1", "h"), ("b2", "out"), ("h", "out")]  # fmt: skip
    edges = [Edge(s, d, tensor=t) for s, d in pairs]
    meta = {"source": "test", "moduleTypes": {"enc": "Encoder"}, "unusedParams": []}
    return Graph(nodes=nodes, edges=edges, inputs=["x", "z"], outputs=["out"], meta=meta)


def test_group_nodes_name_the_children_where_edges_enter_and_leave() -> None:
    index = GraphIndex(ports_graph())
    top = {n["id"]: n for n in index.level("")["nodes"]}
    # graph input z (inside enc/b) enters first, then edges in order
    assert top["ns:enc"]["entries"] == ["ns:enc/b", "ns:enc/a"]
    assert top["ns:enc"]["exits"] == ["ns:enc/a", "ns:enc/b", "b2"]
    assert (top["ns:head"]["entries"], top["ns:head"]["exits"]) == (["h"], ["h"])
    assert "entries" not in top["x"] and "exits" not in top["out"]
    assert top["ns:enc"]["moduleType"] == "Encoder" and index.level("")["meta"] == {
        "source": "test"
    }
    enc = {n["id"]: n for n in index.level("enc")["nodes"]}
    assert (enc["ns:enc/a"]["entries"], enc["ns:enc/a"]["exits"]) == (["a1"], ["a2", "a1"])
    assert (enc["ns:enc/b"]["entries"], enc["ns:enc/b"]["exits"]) == (["z", "b1"], ["b1"])
    # every entry/exit is a node of the group's own level
    for ns, node in [("enc", top["ns:enc"]), ("enc/a", enc["ns:enc/a"])]:
        ids = {n["id"] for n in index.level(ns)["nodes"]}
        assert set(node["entries"]) | set(node["exits"]) <= ids


def test_a_logged_graph_serves_the_same_levels_and_ports(tmp_path: Path) -> None:
    import deepscope

    g = ports_graph()
    g.set_overlay("grad", {"a1": math.nan, "h": 2.0})
    with deepscope.init(logdir=tmp_path, name="r") as run:
        run.log_graph(g)
    expected = GraphIndex(g)
    with TestClient(create_app(Settings(logdir=tmp_path)), base_url=BASE) as client:
        for ns in ["", "enc", "enc/a", "head"]:
            body = client.get(f"/api/graph/level?run=r&namespace={ns}")
            assert body.status_code == 200
            got = strict_loads(body.text)
            want = strict_loads(encode_level(expected.level(ns)))
            assert got == want
    enc = next(n for n in expected.level("")["nodes"] if n["id"] == "ns:enc")
    assert math.isnan(enc["overlays"]["grad"])
    assert '"grad":{"nonfinite":"nan"}' in expected.level_json("").decode()


def test_wire_dict_and_graph_give_equal_levels() -> None:
    g = wide_graph(blocks=6, per_block=30, flat=40)
    from_graph = GraphIndex(g)
    from_wire = GraphIndex(json.loads(to_json(g)))
    for ns in ["", "blocks", "blocks/3"]:
        assert from_wire.level(ns) == from_graph.level(ns)
        assert from_wire.level_json(ns) == from_graph.level_json(ns)
    assert from_wire.search("op1", limit=5) == from_graph.search("op1", limit=5)


def test_malformed_wire_graph_is_a_model_format_error() -> None:
    with pytest.raises(ModelFormatError, match="malformed"):
        GraphIndex({"schemaVersion": 1, "nodes": [{"id": 3, "op": "relu"}]})
    with pytest.raises(ModelFormatError, match="upgrade"):
        GraphIndex({"schemaVersion": 99})


def test_graph_cache_loads_each_key_once_and_forgets_failures() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from deepscope.server.graph_cache import GraphCache

    calls: list[str] = []
    text = to_json(ports_graph())

    def load() -> dict[str, object]:
        calls.append("load")
        return json.loads(text)  # type: ignore[no-any-return]

    cache = GraphCache(2)
    with ThreadPoolExecutor(4) as pool:
        items = list(pool.map(lambda _: cache.get("k", load), range(8)))
    assert calls == ["load"] and all(i is items[0] for i in items)
    assert items[0].json() == text  # the wire dict read back to the IR and written again
    assert [n["id"] for n in items[0].index().level("enc/b")["nodes"]] == ["b1", "z"]

    def broken() -> dict[str, object]:
        calls.append("broken")
        raise ModelFormatError("bad blob")

    for _ in range(2):
        with pytest.raises(ModelFormatError):
            cache.get("bad", broken)
    assert calls == ["load", "broken", "broken"]


def test_a_bad_value_in_a_logged_graph_fails_its_request_not_the_server() -> None:
    data = json.loads(to_json(ports_graph()))
    data["groups"] = {"enc": "not a dict"}
    index = GraphIndex(data)
    with pytest.raises(ModelFormatError, match="malformed"):
        index.level("")
    with pytest.raises(ModelFormatError, match="malformed"):
        index.search("enc")
    assert [n["id"] for n in index.level("head")["nodes"]] == ["h"]
