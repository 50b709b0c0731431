"""The fast trace path: ``torch.fx`` symbolic tracing, then one forward through an
`fx.Interpreter` that records every node's output shapes (what `ShapeProp` does, but
keeping tuple/dict structure so ``getitem`` on containers becomes plain edges)."""

from __future__ import annotations

from typing import Any

from torch import fx, nn

from deepscope.graph.ir import Graph, ParamRef, TensorMeta
from deepscope.graph.namespace import module_namespace
from deepscope.sources._fx_walk import NOT_CONSTANT, FxWalker, stack_namespace
from deepscope.sources._macs import module_macs
from deepscope.sources._torch_trace import (
    Args,
    Kwargs,
    Params,
    Ref,
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


class _FxWalker(FxWalker):
    def __init__(self, gm: fx.GraphModule, rec: _Recorder, params: dict[int, ParamRef]) -> None:
        super().__init__()
        self.gm, self.rec, self.params = gm, rec, params

    def value(self, n: fx.Node) -> Any:
        return self.rec.values.get(n)

    def constant(self, n: fx.Node, value: Any) -> Any:
        if n.op != "get_attr":
            return NOT_CONSTANT
        attr = _fetch(self.gm, str(n.target))
        p = self.params.get(id(attr)) if isinstance(attr, nn.Parameter) else None
        return tree_map(attr, lambda t: Ref(None, 0, tensor_meta(t), p))

    def input_label(self, n: fx.Node) -> str:
        return str(n.target)

    def namespace(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return module_namespace(str(n.target))
        return stack_namespace(n)

    def call(
        self, n: fx.Node, nid: str, arg_refs: Any, ins: list[Ref], outs: list[TensorMeta]
    ) -> None:
        if n.op != "call_module":
            t = n.target
            name = t if isinstance(t, str) else str(getattr(t, "__name__", t))
            self.add_function(n, nid, name, name, arg_refs, ins, outs)
            return
        mod = self.gm.get_submodule(str(n.target))
        self.builder.add(
            nid,
            type(mod).__name__.lower(),
            label=str(n.target),
            namespace=self.namespace(n),
            inputs=ins,
            outputs=outs,
            params=[self.params[id(p)] for p in mod.parameters() if id(p) in self.params],
            macs=module_macs(mod, [r.meta for r in ins], outs[0] if outs else None),
            attrs={"moduleType": type(mod).__name__, "repr": mod.extra_repr()[:200]},
        )


def trace_fx(model: nn.Module, args: Args, kwargs: Kwargs, params: Params) -> Graph:
    """Trace with fx and record shapes with one forward. Raises whatever fx raises."""
    graph = _Tracer().trace(model)
    gm = fx.GraphModule(model, graph)
    rec = _Recorder(gm)
    rec.run(*_order_inputs(gm, args, kwargs))
    return _FxWalker(gm, rec, params).walk(gm.graph.nodes)


def _fetch(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
