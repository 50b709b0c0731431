"""Folding long flat graphs: repeats, blocks and chunks that keep every node reachable."""

from __future__ import annotations

from collections import deque
from pathlib import Path

import pytest

from deepscope.graph.fold import fold
from deepscope.graph.ir import Edge, Graph, Node, TensorMeta

T = TensorMeta((1, 8), "float32")


def light(name: str) -> Graph:
    """An ONNX "light" model that ships inside the onnx wheel (weights as ConstantOfShape)."""
    onnx = pytest.importorskip("onnx")
    from deepscope.sources import onnx_file

    path = Path(onnx.__file__).parent / f"backend/test/data/light/light_{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path.name} is not in this onnx wheel")
    return onnx_file.load(path).graph


def chain(ops: list[str], skip: int = 0) -> Graph:
    """input -> ops... -> output; with `skip`, op i also feeds op i + skip (live values > 1)."""
    nodes = [Node("x", "input", outputs=[T])]
    nodes += [Node(f"n{i}", op, inputs=[T], outputs=[T]) for i, op in enumerate(ops)]
    nodes.append(Node("y", "output", inputs=[T]))
    ids = [n.id for n in nodes]
    edges = [Edge(a, b, tensor=T) for a, b in zip(ids, ids[1:], strict=False)]
    if skip:
        edges += [Edge(f"n{i}", f"n{i + skip}", tensor=T) for i in range(len(ops) - skip)]
    return Graph(nodes, edges, inputs=["x"], outputs=["y"])


def random_ops(n: int, seed: int = 7) -> list[str]:
    kinds = ["linear", "relu", "layer_norm", "gelu", "add"]
    out, x = [], seed
    for _ in range(n):
        x = (1103515245 * x + 12345) % 2**31
        out.append(kinds[(x >> 16) % 5])
    return out


def owner_map(original: Graph, folded: Graph) -> dict[str, str]:
    """original node id -> the folded node that shows it; fails on a node shown twice."""
    owner: dict[str, str] = {}
    for n in folded.nodes:
        for m in n.attrs.get("members", [n.id]) if n.attrs.get("fold") else [n.id]:
            assert m not in owner, f"{m} is in two boxes"
            owner[m] = n.id
    assert set(owner) == {n.id for n in original.nodes}
    return owner


def assert_acyclic(g: Graph) -> None:
    indeg = {n.id: 0 for n in g.nodes}
    succ: dict[str, list[str]] = {n.id: [] for n in g.nodes}
    for e in g.edges:
        succ[e.src].append(e.dst)
        indeg[e.dst] += 1
    queue = deque(k for k, v in indeg.items() if v == 0)
    seen = 0
    while queue:
        k = queue.popleft()
        seen += 1
        for m in succ[k]:
            indeg[m] -= 1
            if indeg[m] == 0:
                queue.append(m)
    assert seen == len(g.nodes), "folding made a cycle"


def test_graph_at_or_below_the_threshold_is_returned_unchanged() -> None:
    g = chain(["relu"] * 118)
    assert fold(g, above=120) is g
    assert fold(chain(["relu"] * 119), above=120) is not g


def test_periodic_chain_is_one_repeat_listing_every_op_in_order() -> None:
    ops = ["linear", "relu", "dropout"] * 400
    g = chain(ops)
    f = fold(g)
    kinds = [(n.op, n.attrs.get("fold")) for n in f.nodes]
    assert kinds == [("input", None), ("group", "repeat"), ("output", None)]
    rep = f.nodes[1].attrs
    assert rep["repeats"] == 400 and rep["unit"] == ["linear", "relu", "dropout"]
    assert rep["members"] == [f"n{i}" for i in range(1200)] and rep["opCount"] == 1200
    assert [(e.src, e.dst) for e in f.edges] == [("x", f.nodes[1].id), (f.nodes[1].id, "y")]


def test_random_chain_is_chunked_into_contiguous_spans_within_budget() -> None:
    g = chain(random_ops(10_000))
    f = fold(g, max_nodes=60)
    assert 30 <= len(f.nodes) <= 60
    owner_map(g, f)
    assert_acyclic(f)
    spans = [n.attrs["span"] for n in f.nodes if n.attrs.get("fold")]
    # chunks tile the order 1..10000 without gaps (single ops left as boxes fill the rest)
    covered = sorted(i for a, b in spans for i in range(a, b + 1))
    assert len(covered) == len(set(covered)) and covered[-1] == 10_000
    assert len(covered) + sum(1 for n in f.nodes if not n.attrs.get("fold")) - 2 == 10_000


def test_densenet_dense_blocks_fold_to_repeats_of_one_layer() -> None:
    g = light("densenet121")
    f = fold(g)
    owner_map(g, f)
    assert_acyclic(f)
    reps = [n.attrs for n in f.nodes if n.attrs.get("fold") == "repeat"]
    assert [r["repeats"] for r in reps] == [6, 12, 24, 16]  # DenseNet-121's four blocks
    layer = ["batch_norm", "mul", "add", "relu", "conv"] * 2 + ["concat"]
    assert all(r["unit"] == layer for r in reps)
    assert len(f.nodes) <= 60
    # weights (ConstantOfShape) ride with their consumer: no constant is a box of its own
    assert not [n for n in f.nodes if n.op == "constant_of_shape"]


def test_resnet50_repeats_keep_the_block_phase() -> None:
    f = fold(light("resnet50"))
    reps = [n.attrs for n in f.nodes if n.attrs.get("fold") == "repeat"]
    # stages of 3, 4, 6, 3 bottlenecks: the first of each is a distinct (projection) block
    assert [r["repeats"] for r in reps] == [2, 3, 5, 2]
    assert all(r["unit"][0] == "conv" and r["unit"][-2:] == ["sum", "relu"] for r in reps)
    blocks = [n.attrs for n in f.nodes if n.attrs.get("fold") == "block"]
    assert len(blocks) == 4 and all(b["unit"][-1] == "sum" for b in blocks)


def test_constant_chains_join_their_first_consumer() -> None:
    nodes = [Node("x", "input", outputs=[T])]
    edges = []
    prev = "x"
    for i in range(150):
        nodes += [Node(f"w{i}", "constant_of_shape"), Node(f"u{i}", "unsqueeze")]
        nodes.append(Node(f"m{i}", "mul"))
        edges += [Edge(f"w{i}", f"u{i}"), Edge(f"u{i}", f"m{i}"), Edge(prev, f"m{i}")]
        prev = f"m{i}"
    nodes.sort(key=lambda n: n.op != "constant_of_shape")  # weights first, as ONNX has them
    g = Graph(nodes, edges, inputs=["x"])
    f = fold(g, max_nodes=20)
    owner = owner_map(g, f)
    assert all(owner[f"w{i}"] == owner[f"u{i}"] == owner[f"m{i}"] for i in range(150))
    assert len(f.nodes) <= 20


def test_fold_work_grows_linearly_with_nodes_and_edges() -> None:
    def work(g: Graph) -> int:
        return int(fold(g).meta["fold"]["work"])

    for make in (
        lambda n: chain(random_ops(n)),
        lambda n: chain(["linear", "relu", "gelu"] * (n // 3)),
        lambda n: chain(random_ops(n), skip=3),  # three values live at every cut
    ):
        small, big = make(3000), make(6000)
        w1, w2 = work(small), work(big)
        assert 1.8 <= w2 / w1 <= 2.2, (w1, w2)
        assert w2 <= 80 * (len(big.nodes) + len(big.edges))


def test_collapsed_modules_of_one_type_fold_into_a_repeat() -> None:
    # 200 transformer-like layers, each its own namespace: collapse(depth=2) leaves 200
    # group boxes (too many to draw); fold groups them by module type, not by name
    nodes, edges = [Node("x", "input", outputs=[T])], []
    prev = "x"
    for i in range(200):
        for j, op in enumerate(["layer_norm", "linear", "gelu", "linear", "add"]):
            nid = f"l{i}.{j}"
            nodes.append(Node(nid, op, namespace=f"layers/{i}"))
            edges.append(Edge(prev, nid))
            prev = nid
    meta = {"moduleTypes": {f"layers/{i}": "Block" for i in range(200)}}
    g = Graph(nodes, edges, inputs=["x"], meta=meta)
    from deepscope.graph.collapse import collapse

    c = collapse(g, 2)
    f = fold(c)
    reps = [n.attrs for n in f.nodes if n.attrs.get("fold") == "repeat"]
    assert [(r["repeats"], r["unit"], r["opCount"]) for r in reps] == [(200, ["Block"], 1000)]
    assert reps[0]["members"] == [f"ns:layers/{i}" for i in range(200)]
