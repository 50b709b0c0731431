"""Graph extraction speed against torchview and torchinfo, and scale on a 100k-op graph.

Prints one line per measurement and, last, one JSON object with every figure (seconds are
medians of several runs on CPU). The synthetic graph's figures: ``aggregate_s`` and
``to_json_s`` (writing, goal together <= 30 s), ``from_json_s`` (reading back to the IR) and
``server_index_s`` (what the dashboard does on a cold open: ``json.loads`` + ``GraphIndex``).
``graph_export`` times the static SVG export on the ONNX "light" models of the onnx wheel
and on flat 10k-op chains (``--export-only`` runs just that).
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from deepscope.graph.aggregate import aggregate
from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta
from deepscope.graph.serialize import from_json, loads, to_json
from deepscope.server.graph_index import GraphIndex
from deepscope.sources.torch_module import graph


def _interleaved(fns: dict[str, Callable[[], Any]], runs: int = 5) -> dict[str, float]:
    """Median seconds of each function, runs taken in turn (ours, peer, ours, ...) so that a
    load change on a shared machine hits every tool alike."""
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _median(fn: Callable[[], Any], runs: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (self.down(x) if self.down is not None else x))


class ResNet18(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(3, 2, 1)
        chans = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
        self.layers = nn.Sequential(
            *[nn.Sequential(Block(a, b, s), Block(b, b, 1)) for a, b, s in chans]
        )
        self.avg = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        out: torch.Tensor = self.fc(torch.flatten(self.avg(self.layers(x)), 1))
        return out


def _transformer() -> nn.Module:
    layer = nn.TransformerEncoderLayer(256, 8, 1024, batch_first=True)
    return nn.TransformerEncoder(layer, 6, enable_nested_tensor=False)


def _synthetic(n: int = 100_000) -> Graph:
    nodes, edges = [], []
    t = TensorMeta((1, 64), "float32")
    for i in range(n):
        ns = f"stage{i // 25000}/block{i // 2500}/layer{i // 250}/unit{i // 25}"
        p = (
            [ParamRef(f"{ns.replace('/', '.')}.w{i % 25}", (64, 64), "float32")]
            if i % 3 == 0
            else []
        )
        nodes.append(
            Node(
                f"n{i}",
                "linear" if p else "relu",
                label=f"op{i}",
                namespace=ns,
                inputs=[t],
                outputs=[t],
                params=p,
                macs=4096 if p else 0,
            )
        )
        if i:
            edges.append(Edge(f"n{i - 1}", f"n{i}", tensor=t))
    return Graph(nodes, edges, inputs=["n0"], outputs=[f"n{n - 1}"])


LIGHT_MODELS = (
    "densenet121",
    "resnet50",
    "inception_v1",
    "inception_v2",
    "vgg19",
    "zfnet512",
    "shufflenet",
    "squeezenet",
    "bvlc_alexnet",
)


def _flat_chain(n: int, periodic: bool) -> Graph:
    """A flat chain of `n` ops, no namespaces: a repeating op pattern, or a pseudo-random one."""
    t = TensorMeta((1, 64), "float32")
    kinds = ["linear", "relu", "layer_norm", "gelu", "add"]
    nodes = [Node("x", "input", outputs=[t])]
    seed = 12345
    for i in range(n):
        seed = (1103515245 * seed + 12345) % 2**31
        op = kinds[i % 5] if periodic else kinds[(seed >> 16) % 5]
        nodes.append(Node(f"n{i}", op, inputs=[t], outputs=[t]))
    nodes.append(Node("y", "output", inputs=[t]))
    ids = [x.id for x in nodes]
    edges = [Edge(a, b, tensor=t) for a, b in zip(ids, ids[1:], strict=False)]
    return Graph(nodes, edges, inputs=["x"], outputs=["y"])


def graph_export() -> dict[str, Any]:
    """`deepscope graph -o x.svg` (render_svg at the CLI's default depth 2) on the ONNX
    "light" models shipped in the onnx wheel and on flat 10k-op chains: median seconds of 3
    runs, SVG bytes, canvas px and boxes drawn."""
    import re
    from pathlib import Path

    import onnx

    from deepscope.render.svg_graph import render_svg
    from deepscope.sources import onnx_file

    light = Path(onnx.__file__).parent / "backend/test/data/light"
    cases: dict[str, Graph] = {
        name: onnx_file.load(light / f"light_{name}.onnx").graph for name in LIGHT_MODELS
    }
    cases["chain10k_periodic"] = _flat_chain(10_000, periodic=True)
    cases["chain10k_random"] = _flat_chain(10_000, periodic=False)
    out: dict[str, Any] = {}
    for name, g in cases.items():
        seconds = _median(partial(render_svg, g, 2), runs=3)
        svg = render_svg(g, 2)
        size = re.search(r'width="(\d+)" height="(\d+)"', svg)
        assert size is not None
        out[name] = {
            "nodes": len(g.nodes),
            "svg_s": round(seconds, 3),
            "svg_bytes": len(svg.encode()),
            "width_px": int(size[1]),
            "height_px": int(size[2]),
            "boxes": svg.count('class="node"'),
        }
        print("export", name, out[name], flush=True)
    return out


def main() -> None:
    if "--export-only" in sys.argv:
        print(json.dumps({"graph_export": graph_export()}))
        return
    from torchinfo import summary as torchinfo_summary
    from torchview import draw_graph

    torch.manual_seed(0)
    # one intra-op thread: on a shared 2-core machine torch's thread pool stalls at random,
    # which swamps the tools' own costs (every tool runs the same forward pass)
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    cases = {
        "resnet18": (ResNet18().eval(), torch.randn(1, 3, 224, 224)),
        "transformer6x256": (_transformer().eval(), torch.randn(1, 128, 256)),
    }
    for name, (model, x) in cases.items():
        med = _interleaved(
            {
                "ours": partial(graph, model, x),
                "torchview": partial(draw_graph, model, input_data=x, save_graph=False, depth=99),
                "torchinfo": partial(torchinfo_summary, model, input_data=x, verbose=0),
            }
        )
        ours, tv, ti = med["ours"], med["torchview"], med["torchinfo"]
        g = graph(model, x)
        results[name] = {
            "deepscope_s": round(ours, 4),
            "torchview_s": round(tv, 4),
            "torchinfo_s": round(ti, 4),
            "ratio_vs_torchview": round(ours / tv, 3),
            "trace": g.meta["trace"],
            "nodes": len(g.nodes),
            "macs": g.groups[""].macs,
        }
        print(name, results[name], flush=True)

    g = _synthetic()
    agg = _median(lambda: aggregate(g), runs=3)
    ser = _median(lambda: to_json(g), runs=3)
    text = to_json(g)
    de = _median(lambda: from_json(text), runs=3)
    index = _median(lambda: GraphIndex(loads(text)), runs=3)
    results["synthetic100k"] = {
        "nodes": len(g.nodes),
        "groups": len(g.groups),
        "aggregate_s": round(agg, 3),
        "to_json_s": round(ser, 3),
        "write_s": round(agg + ser, 3),
        "write_goal_s": 30.0,
        "from_json_s": round(de, 3),
        "server_index_s": round(index, 3),  # json.loads + GraphIndex: a cold graph open
        "json_mb": round(len(text.encode()) / 1e6, 2),
    }
    print("synthetic100k", results["synthetic100k"], flush=True)
    results["graph_export"] = graph_export()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
