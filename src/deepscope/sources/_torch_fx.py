"""The fast trace path: ``torch.fx`` symbolic tracing, then one forward through an
`fx.Interpreter` that records every node's output shapes (what `ShapeProp` does, but
keeping tuple/dict structure so ``getitem`` on containers becomes plain edges)."""

from __future__ import annotations

import operator
from typing import Any

from torch import fx, nn

from deepscope.graph.ir import Graph, ParamRef, TensorMeta
from deepscope.graph.namespace import module_namespace
from deepscope.sources._macs import function_macs, module_macs, normalize_op
from deepscope.sources._torch_trace import (
    Builder,
    Ref,
    flatten,
    is_leaf_module,
    tensor_meta,
    tree_map,
)

__all__ = ["trace_fx"]


class _Tracer(fx.Tracer):
    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_leaf_module(m)


class _Recorder(fx.Interpreter):
    def __init__(self, gm: fx.GraphModule) -> None:
        super().__init__(gm, garbage_collect_values=True)
        self.values: dict[fx.Node, Any] = {}

    def run_node(self, n: fx.Node) -> Any:
        result = super().run_node(n)
        self.values[n] = tree_map(result, tensor_meta)
        return result


def _fn_name(n: fx.Node) -> str:
    t = n.target
    if isinstance(t, str):
        return t
    return str(getattr(t, "__name__", t))


def _namespace(n: fx.Node) -> str:
    if n.op == "call_module":
        return module_namespace(str(n.target))
    stack = n.meta.get("nn_module_stack")
    if stack:
        path = list(stack.values())[-1][0]
        return module_namespace(str(path))
    return ""


def _order_inputs(gm: fx.GraphModule, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[Any]:
    ordered: list[Any] = list(args)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for p in placeholders[len(args) :]:
        name = str(p.target).lstrip("*")
        if name in kwargs:
            ordered.append(kwargs[name])
        elif p.args:
            ordered.append(p.args[0])
        else:
            raise TypeError(f"example inputs give no value for the model's argument '{name}'")
    return ordered


def trace_fx(
    model: nn.Module,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    params: dict[int, ParamRef],
) -> Graph:
    """Trace with fx and record shapes with one forward. Raises whatever fx raises."""
    graph = _Tracer().trace(model)
    gm = fx.GraphModule(model, graph)
    rec = _Recorder(gm)
    rec.run(*_order_inputs(gm, args, kwargs))

    b = Builder()
    trees: dict[fx.Node, Any] = {}

    def refs_of(value: Any) -> Any:
        return fx.node.map_arg(value, lambda a: trees.get(a))

    for n in gm.graph.nodes:
        value = rec.values.get(n)
        if n.op == "get_attr":
            attr = _fetch(gm, str(n.target))
            p = params.get(id(attr)) if isinstance(attr, nn.Parameter) else None
            trees[n] = tree_map(attr, lambda t, p=p: Ref(None, 0, tensor_meta(t), p))
            continue
        if n.op == "call_function" and n.target is operator.getitem:
            parent = trees.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            if parent is not None and not isinstance(parent, Ref):
                trees[n] = parent[n.args[1]]
                continue
        if n.op == "output":
            ins = flatten(refs_of(n.args[0]))
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
        metas = flatten(value, TensorMeta)
        if n.op != "placeholder" and not metas:
            trees[n] = value  # shape arithmetic and other non-tensor values: no node
            continue
        nid = b.new_id(n.name)
        counter = iter(range(len(metas)))
        trees[n] = tree_map_meta(value, lambda m, nid=nid, c=counter: Ref(nid, next(c), m))
        outs = [r.meta for r in flatten(trees[n])]
        if n.op == "placeholder":
            b.add(nid, "input", label=str(n.target), namespace="", inputs=[], outputs=outs)
            b.inputs.append(nid)
            continue
        arg_refs = refs_of((n.args, n.kwargs))
        ins = flatten(arg_refs)
        first = outs[0] if outs else None
        if n.op == "call_module":
            mod = gm.get_submodule(str(n.target))
            mparams = [params[id(p)] for p in mod.parameters() if id(p) in params]
            b.add(
                nid,
                type(mod).__name__.lower(),
                label=str(n.target),
                namespace=_namespace(n),
                inputs=ins,
                outputs=outs,
                params=mparams,
                macs=module_macs(mod, [r.meta for r in ins], first),
                attrs={"moduleType": type(mod).__name__, "repr": mod.extra_repr()[:200]},
            )
            continue
        name = _fn_name(n)
        margs, mkwargs = tree_map_ref_meta(arg_refs)
        b.add(
            nid,
            normalize_op(name),
            label=n.name,
            namespace=_namespace(n),
            inputs=ins,
            outputs=outs,
            macs=function_macs(name, margs, mkwargs, first),
            attrs={"target": name},
        )
    return b.graph({})


def _fetch(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def tree_map_meta(value: Any, leaf: Any) -> Any:
    """Like `tree_map` for trees whose leaves are `TensorMeta`."""
    if isinstance(value, TensorMeta):
        return leaf(value)
    if isinstance(value, tuple):
        items = [tree_map_meta(v, leaf) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [tree_map_meta(v, leaf) for v in value]
    if isinstance(value, dict):
        return {k: tree_map_meta(v, leaf) for k, v in value.items()}
    return value


def tree_map_ref_meta(arg_refs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """(args, kwargs) with every `Ref` replaced by its `TensorMeta` (for MAC formulas)."""

    def conv(v: Any) -> Any:
        if isinstance(v, Ref):
            return v.meta
        if isinstance(v, (tuple, list)):
            return type(v)(conv(x) for x in v) if not hasattr(v, "_fields") else v
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v

    args, kwargs = arg_refs
    return tuple(conv(a) for a in args), {k: conv(v) for k, v in kwargs.items()}
