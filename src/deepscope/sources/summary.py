"""A torchinfo-like layer table built from the Graph IR's groups.

Example:
    >>> import torch, deepscope
    >>> print(deepscope.summary(torch.nn.Linear(3, 2), torch.zeros(1, 3)))  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepscope.graph.aggregate import aggregate
from deepscope.graph.ir import Graph, Node, ParamRef, Shape
from deepscope.graph.namespace import module_namespace, prefixes

__all__ = ["Summary", "SummaryRow", "summary", "summary_from_graph"]


@dataclass(frozen=True)
class SummaryRow:
    """One module (namespace) of the table."""

    namespace: str
    depth: int
    module_type: str
    output_shapes: list[Shape | None]
    params: int
    trainable_params: int
    macs: int

    @property
    def trainable(self) -> str:
        if not self.params:
            return "--"
        if self.trainable_params == self.params:
            return "True"
        return "False" if self.trainable_params == 0 else "Partial"


@dataclass
class Summary:
    """Rows to `depth` plus totals; ``str(summary)`` is the table."""

    rows: list[SummaryRow]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    total_macs: int
    graph: Graph = field(repr=False)

    def __str__(self) -> str:
        return format_table(self)


def _shapes(shapes: list[Shape | None]) -> str:
    parts = [
        "[" + ", ".join("?" if d is None else str(d) for d in s) + "]" if s else "?" for s in shapes
    ]
    text = ", ".join(parts[:2]) + (", ..." if len(parts) > 2 else "")
    return text or "--"


def format_table(s: Summary) -> str:
    """The table text: module tree, output shapes, params, MACs, trainable, totals."""
    header = ("Layer (type)", "Output Shape", "Param #", "MACs", "Trainable")
    body = []
    for r in s.rows:
        name = r.namespace.rsplit("/", 1)[-1] if r.namespace else ""
        label = (
            (
                "  " * (r.depth - 1)
                + ("\u2514\u2500" if r.depth else "")
                + f"{name} ({r.module_type})"
            )
            if r.depth
            else r.module_type
        )
        body.append(
            (
                label,
                _shapes(r.output_shapes),
                f"{r.params:,}" if r.params else "--",
                f"{r.macs:,}" if r.macs else "--",
                r.trainable,
            )
        )
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(5)]
    line = "=" * (sum(widths) + 2 * 4)

    def fmt(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [row[i].rjust(widths[i]) for i in (2, 3)] + [row[4].rjust(widths[4])]
        return "  ".join(cells).rstrip()

    lines = [line, fmt(header), line, *(fmt(b) for b in body), line]
    lines += [
        f"Total params: {s.total_params:,}",
        f"Trainable params: {s.trainable_params:,}",
        f"Non-trainable params: {s.non_trainable_params:,}",
        f"Total mult-adds (MACs): {s.total_macs:,} ({s.total_macs / 1e6:.2f} M)",
    ]
    if s.graph.meta.get("macsNote"):
        lines.append(f"MACs note: {s.graph.meta['macsNote']}")
    lines.append(line)
    return "\n".join(lines)


def summary_from_graph(graph: Graph, depth: int = 3) -> Summary:
    """A `Summary` from a graph's groups (file sources, logged graphs)."""
    groups = graph.groups or aggregate(graph)
    order: list[str] = list((graph.meta.get("moduleTypes") or {}).keys())
    for n in graph.nodes:
        order.extend(prefixes(n.namespace))
    seen: set[str] = set()
    rows: list[SummaryRow] = []
    for ns in order:
        if ns in seen or ns not in groups:
            continue
        seen.add(ns)
        d = 0 if ns == "" else ns.count("/") + 1
        if d > depth:
            continue
        g = groups[ns]
        mtype = g.module_type or (str(graph.meta.get("modelType") or "Model") if ns == "" else "")
        rows.append(
            SummaryRow(ns, d, mtype or "-", g.output_shapes, g.params, g.trainable_params, g.macs)
        )
    root = groups.get("")
    total = root.params if root else 0
    trainable = root.trainable_params if root else 0
    return Summary(rows, total, trainable, total - trainable, root.macs if root else 0, graph)


def weights_graph(weights: dict[str, Any], model_type: str = "Model") -> Graph:
    """A node-per-module graph holding only parameters (for weights-only files)."""
    owners: dict[str, list[ParamRef]] = {}
    for name, w in weights.items():
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        ref = ParamRef(name, tuple(int(d) for d in w.shape), str(w.dtype))
        owners.setdefault(owner, []).append(ref)
    nodes = [
        Node(id=f"w:{o}", op="weights", label=o, namespace=module_namespace(o), params=ps)
        for o, ps in owners.items()
    ]
    g = Graph(
        nodes=nodes, meta={"modelType": model_type, "note": "weights only: no shapes or MACs"}
    )
    aggregate(g)
    return g


def summary(model: Any, example_inputs: Any = None, depth: int = 3, **options: Any) -> Summary:
    """Trace a live ``nn.Module`` (or take a `Graph`/`Model`/file path) and tabulate it."""
    from deepscope.sources import graph as build_graph
    from deepscope.sources.base import Model

    if isinstance(model, Model) and not model.graph.nodes and model.weights:
        return summary_from_graph(weights_graph(model.weights, model.format), depth)
    return summary_from_graph(build_graph(model, example_inputs, **options), depth)
