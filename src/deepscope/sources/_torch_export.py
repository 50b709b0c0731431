"""The ``torch.export`` (non-strict) trace path: an ATen-level graph whose shapes come from
fake tensors (no real forward), with each op's module path from ``nn_module_stack``.

Opt-in (``trace="export"``): it costs seconds per model where fx and the hook trace cost
milliseconds, and draws ATen ops rather than the modules and functions the user wrote."""

from __future__ import annotations

import operator
import re
from typing import Any

import torch
from torch import fx, nn

from deepscope.graph.ir import Graph, ParamRef, TensorMeta
from deepscope.graph.namespace import module_namespace
from deepscope.sources._macs import function_macs, normalize_op
from deepscope.sources._torch_fx import tree_map_meta, tree_map_ref_meta
from deepscope.sources._torch_trace import (
    Builder,
    Ref,
    flatten,
    tensor_meta,
    tree_map,
)

__all__ = ["trace_export"]

_SELF = re.compile(r"^(L\['self'\]\.?|L__self__\.?)")


def _namespace(n: fx.Node) -> str:
    stack = n.meta.get("nn_module_stack")
    if not stack:
        return ""
    path = str(list(stack.values())[-1][0])
    return module_namespace(_SELF.sub("", path))


def _op_name(target: Any) -> str:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(getattr(packet, "__name__", target))
    return str(getattr(target, "__name__", target))


def trace_export(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    params: dict[int, ParamRef],
) -> Graph:
    """Export with ``strict=False`` and build the graph from node metadata."""
    ep = torch.export.export(model, args, kwargs, strict=False)
    kinds: dict[str, tuple[str, str | None]] = {}
    for spec in ep.graph_signature.input_specs:
        name = getattr(spec.arg, "name", None)
        if name is not None:
            kinds[name] = (spec.kind.name, spec.target)

    b = Builder()
    trees: dict[fx.Node, Any] = {}
    for n in ep.graph.nodes:
        val = tree_map(n.meta.get("val"), tensor_meta)
        if n.op == "placeholder":
            kind, target = kinds.get(n.name, ("USER_INPUT", None))
            if kind != "USER_INPUT":
                p = _param(model, target, params) if kind == "PARAMETER" else None
                trees[n] = tree_map_meta(val, lambda m, p=p: Ref(None, 0, m, p))
                continue
        if n.op == "call_function" and n.target is operator.getitem:
            parent = trees.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            if parent is not None and not isinstance(parent, Ref):
                trees[n] = parent[n.args[1]]
                continue
        arg_refs = fx.node.map_arg((n.args, n.kwargs), lambda a: trees.get(a))
        if n.op == "output":
            ins = flatten(arg_refs)
            nid = b.new_id("output")
            b.add(
                nid,
                "output",
                label="output",
                namespace="",
                inputs=ins,
                outputs=[r.meta for r in ins],
            )
            b.outputs.append(nid)
            continue
        metas = flatten(val, TensorMeta)
        if n.op != "placeholder" and not metas:
            trees[n] = val
            continue
        nid = b.new_id(n.name)
        counter = iter(range(len(metas)))
        trees[n] = tree_map_meta(val, lambda m, nid=nid, c=counter: Ref(nid, next(c), m))
        outs = [r.meta for r in flatten(trees[n])]
        if n.op == "placeholder":
            b.add(nid, "input", label=n.name, namespace="", inputs=[], outputs=outs)
            b.inputs.append(nid)
            continue
        name = _op_name(n.target)
        margs, mkwargs = tree_map_ref_meta(arg_refs)
        b.add(
            nid,
            normalize_op(name),
            label=n.name,
            namespace=_namespace(n),
            inputs=flatten(arg_refs),
            outputs=outs,
            macs=function_macs(name, margs, mkwargs, outs[0] if outs else None),
            attrs={"target": str(n.target)},
        )
    return b.graph({})


def _param(model: nn.Module, target: str | None, params: dict[int, ParamRef]) -> ParamRef | None:
    if target is None:
        return None
    try:
        return params.get(id(model.get_parameter(target)))
    except AttributeError:
        return None
