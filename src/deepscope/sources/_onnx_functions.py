"""ONNX shape inference without letting model-local functions blow up (M11).

`onnx.shape_inference.infer_shapes` expands every call of a model-local function, and
functions may call each other several times per level: 13 levels of three calls is a
1.3 KB file that expands to 1.6 million nodes and minutes of work. So:

- `expanded_nodes` counts the nodes inference would visit, with every call inlined,
  memoised per function (linear in the file's size), refusing recursive functions;
- over `_limits.ONNX_FUNCTION_NODE_BUDGET` inference is skipped (the graph is still shown);
- a model with local functions, or a large one, is inferred in the sandboxed child
  (`_sandbox.run_task`, confined to its descriptor) with a time and memory limit;
- a small model without local functions is inferred here: then inference visits each
  node once (subgraphs once, standard-op function bodies are fixed by the opset), and a
  child start would cost more than the inference itself.

Example:
    >>> proto, notes = infer(proto, Path("m.onnx"))     # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from deepscope.errors import ModelFormatError
from deepscope.sources import _limits

__all__ = ["expanded_nodes", "infer", "over_budget", "warm_up", "worker_onnx_shapes"]

_MAX_DEPTH = 64  # subgraph / call nesting


def _graphs_of(node: Any) -> list[Any]:
    from onnx import AttributeProto

    out: list[Any] = []
    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            out.append(a.g)
        elif a.type == AttributeProto.GRAPHS:
            out.extend(a.graphs)
    return out


def expanded_nodes(model: Any, budget: int) -> int:
    """Nodes shape inference visits with every local-function call inlined (saturates at
    `budget + 1`). Raises `ModelFormatError` for a function that calls itself."""
    functions = {(f.domain, f.name, getattr(f, "overload", "")): f for f in model.functions}
    cost: dict[tuple[str, str, str], int] = {}
    active: set[tuple[str, str, str]] = set()

    def nodes_cost(nodes: Any, depth: int) -> int:
        if depth > _MAX_DEPTH:
            raise ModelFormatError(f"ONNX functions and subgraphs nest deeper than {_MAX_DEPTH}")
        total = 0
        for n in nodes:
            total += 1
            key = (n.domain, n.op_type, getattr(n, "overload", ""))
            if key in functions:
                total += function_cost(key, depth + 1)
            for g in _graphs_of(n):
                total += nodes_cost(g.node, depth + 1)
            if total > budget:
                return budget + 1
        return total

    def function_cost(key: tuple[str, str, str], depth: int) -> int:
        if key in cost:
            return cost[key]
        if key in active:
            raise ModelFormatError(
                f"ONNX function {key[0]}:{key[1]} calls itself; functions cannot be recursive"
            )
        active.add(key)
        cost[key] = nodes_cost(functions[key].node, depth)
        active.discard(key)
        return cost[key]

    return nodes_cost(model.graph.node, 0)


def _node_total(model: Any) -> int:
    stack, total = [model.graph], 0
    while stack:
        g = stack.pop()
        total += len(g.node)
        for n in g.node:
            stack.extend(_graphs_of(n))
    return total


def over_budget(model: Any) -> int | None:
    """The nodes that inlining local functions adds, when over the budget; else None."""
    budget = _limits.ONNX_FUNCTION_NODE_BUDGET
    plain = _node_total(model)
    extra = expanded_nodes(model, plain + budget) - plain
    return extra if extra > budget else None


def infer(model: Any, path: Path) -> tuple[Any, list[str]]:
    """`model` with inferred shapes where that is safe, plus notes on what was skipped."""
    import onnx

    if over_budget(model) is not None:
        return model, [
            "shapes not inferred: model-local functions expand to more than "
            f"{_limits.ONNX_FUNCTION_NODE_BUDGET:,} extra nodes (the graph is shown as stored)"
        ]
    plain = _node_total(model)
    if not model.functions and plain <= _limits.ONNX_IN_PROCESS_NODES:
        try:
            return onnx.shape_inference.infer_shapes(model), []
        except Exception as e:  # a failed inference only costs shapes
            return model, [f"shapes not inferred: {_first_line(e)}"]
    from deepscope.sources._sandbox import run_task

    size = path.stat().st_size
    try:
        found = run_task(
            "onnx_shapes",
            path,
            # the limits fit a hostile small file; a big legitimate model gets room in
            # proportion to what it holds (protobuf copies, inference on every node)
            timeout=_limits.ONNX_INFER_TIMEOUT_S + plain * 30e-6,
            memory=_limits.ONNX_INFER_MEMORY + 4 * size,
        )
    except ModelFormatError as e:  # worker died, timed out, or inference failed there
        return model, [f"shapes not inferred: {_first_line(e)}"]
    return _with_value_info(model, found), []


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:300]


def _with_value_info(model: Any, found: dict[str, Any]) -> Any:
    from onnx import helper

    out = type(model)()
    out.CopyFrom(model)
    known = {vi.name for vi in out.graph.value_info}
    for name, elem_type, dims in found.get("valueInfo", []):
        if isinstance(name, str) and name not in known and isinstance(elem_type, int):
            shape = None if dims is None else [d if isinstance(d, int) else None for d in dims]
            try:
                out.graph.value_info.append(helper.make_tensor_value_info(name, elem_type, shape))
            except (TypeError, ValueError):
                continue
    return out


def _collect(model: Any) -> list[list[Any]]:
    rows: list[list[Any]] = []
    stack = [model.graph]
    while stack:
        g = stack.pop()
        for vi in list(g.value_info) + list(g.output):
            t = vi.type
            if not t.HasField("tensor_type"):
                continue
            tt = t.tensor_type
            dims = (
                [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
                if tt.HasField("shape")
                else None
            )
            rows.append([vi.name, int(tt.elem_type), dims])
        for n in g.node:
            stack.extend(_graphs_of(n))
    return rows


def worker_onnx_shapes(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Sandbox task: parse the model from the descriptor, check the budget, infer shapes."""
    import onnx

    fd = int(options["fd"])
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    model = onnx.load_model_from_string(b"".join(chunks))
    if over_budget(model) is not None:
        raise ModelFormatError("model-local functions expand past the node budget")
    inferred = onnx.shape_inference.infer_shapes(model)
    return {"valueInfo": _collect(inferred)}


def warm_up() -> None:
    """Import and run inference once (a model with a local function) before confinement."""
    import onnx
    from onnx import TensorProto, helper

    fn = helper.make_function(
        "local", "f", ["x"], ["y"], [helper.make_node("Relu", ["x"], ["y"])], [_opset("")]
    )
    graph = helper.make_graph(
        [helper.make_node("f", ["x"], ["y"], domain="local")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, functions=[fn], opset_imports=[_opset(""), _opset("local")])
    onnx.shape_inference.infer_shapes(onnx.load_model_from_string(model.SerializeToString()))
    _collect(model)


def _opset(domain: str) -> Any:
    from onnx import helper

    return helper.make_opsetid(domain, 17 if not domain else 1)
