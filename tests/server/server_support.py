"""Helpers shared by the server tests (strict JSON, a small graph, what the fixture logged)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.graph.ir import Edge, Graph, Node, ParamRef, TensorMeta

TOKEN = "test-token-0123456789abcdef"
BASE = "http://127.0.0.1:6100"


def strict_loads(text: str | bytes) -> Any:
    """`json.loads` that fails on NaN/Infinity literals (the browser's JSON.parse would)."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"non-strict JSON literal {name} in a response")

    return json.loads(text, parse_constant=refuse)


def small_graph() -> Graph:
    """input -> features/conv -> features/relu -> head/fc -> output, with an overlay."""
    t = TensorMeta((1, 4), "float32")
    w = ParamRef("head.fc.weight", (2, 4), "float32")
    nodes = [
        Node("x", "input", label="x", outputs=[t]),
        Node("conv", "conv2d", label="conv", namespace="features/conv", outputs=[t], macs=10),
        Node("relu", "relu", label="relu", namespace="features/act", inputs=[t], outputs=[t]),
        Node("fc", "linear", label="fc", namespace="head/fc", params=[w], inputs=[t], macs=8),
        Node("out", "output", label="out", inputs=[t]),
    ]
    edges = [Edge("x", "conv", tensor=t), Edge("conv", "relu", tensor=t),
             Edge("relu", "fc", tensor=t), Edge("fc", "out")]  # fmt: skip
    g = Graph(nodes=nodes, edges=edges, inputs=["x"], outputs=["out"],
              meta={"source": "test", "moduleTypes": {"features": "Sequential", "head": "Head"}})  # fmt: skip
    g.set_overlay("grad_norm", {"conv": 1.5, "relu": math.nan, "fc": 0.25})
    return g


@dataclass
class Logged:
    """What the fixture logged, to compare responses with."""

    logdir: Path
    run: str
    losses: list[float]
    texts: list[str]
    image: np.ndarray


def image_png(image: np.ndarray) -> bytes:
    from deepscope.tracking.image import encode_image

    data, _ = encode_image(image, dataformats="HWC")
    return data


SECRET_MARK = "SECRET-OUTSIDE"
