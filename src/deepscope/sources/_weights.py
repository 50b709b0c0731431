"""Shared by weights-only sources: a graph from tensor names, and chunked tensor statistics."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from deepscope.graph.ir import Graph, Node, ParamRef, TensorMeta
from deepscope.graph.namespace import owner_namespace


def graph_from_tensors(tensors: Iterable[tuple[str, tuple[int, ...], str]], fmt: str) -> Graph:
    """One node per named tensor, grouped by its dotted module path."""
    nodes = []
    for name, shape, dtype in tensors:
        ref = ParamRef(name=name, shape=tuple(shape), dtype=dtype)
        nodes.append(
            Node(
                id=name,
                op="tensor",
                label=name.rsplit(".", 1)[-1],
                namespace=owner_namespace(name),
                outputs=[TensorMeta(shape=tuple(shape), dtype=dtype)],
                params=[ref],
            )
        )
    return Graph(nodes=nodes, meta={"source": fmt, "weightsOnly": True})


class StatsAccumulator:
    """Streaming count/min/max/mean/std over finite values plus NaN and ±Inf counts.

    Chunks are combined with Chan's parallel variance formula, so a tensor is never
    needed in memory at once.
    """

    def __init__(self) -> None:
        self.count = 0  # every element, finite or not
        self.finite = 0
        self.n_nan = 0
        self.n_inf = 0
        self.min = math.inf
        self.max = -math.inf
        self._mean = 0.0
        self._m2 = 0.0

    def add(self, values: np.ndarray) -> None:
        a = np.asarray(values)
        if a.dtype.kind == "c":
            a = np.abs(a)
        a = a.astype(np.float64, copy=False).ravel()
        self.count += a.size
        if a.size == 0:
            return
        finite_mask = np.isfinite(a)
        nan = int(np.isnan(a).sum())
        self.n_nan += nan
        self.n_inf += int(a.size - finite_mask.sum()) - nan
        f = a[finite_mask]
        if f.size == 0:
            return
        self.min = min(self.min, float(f.min()))
        self.max = max(self.max, float(f.max()))
        mean = float(f.mean())
        m2 = float(((f - mean) ** 2).sum())
        n_a, n_b = self.finite, int(f.size)
        delta = mean - self._mean
        total = n_a + n_b
        self._mean += delta * n_b / total
        self._m2 += m2 + delta * delta * n_a * n_b / total
        self.finite = total

    def result(self) -> dict[str, Any]:
        """JSON-safe dict; min/max/mean/std are None when no value is finite."""
        has = self.finite > 0
        return {
            "count": self.count,
            "min": self.min if has else None,
            "max": self.max if has else None,
            "mean": self._mean if has else None,
            "std": math.sqrt(self._m2 / self.finite) if has else None,
            "n_nan": self.n_nan,
            "n_inf": self.n_inf,
        }


def tensor_stats(values: np.ndarray, chunk: int = 1 << 22) -> dict[str, Any]:
    """Statistics of an array (memory-mapped is fine: read `chunk` elements at a time)."""
    acc = StatsAccumulator()
    flat = np.asarray(values).reshape(-1)
    for start in range(0, max(flat.size, 1), chunk):
        acc.add(flat[start : start + chunk])
    return acc.result()
