"""The trace path that works for any model that runs: one eager forward with a forward
pre-hook and hook on every module (for the module path of each op, and to record each leaf
module call as one node) plus a `TorchFunctionMode` that records the tensor functions run
outside leaf modules (``x + y``, ``torch.flatten``, ``if x.sum() > 0``). Edges come from
tensor identity. Control flow is recorded as it ran for the example inputs."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from deepscope.graph.ir import Graph, ParamRef, TensorMeta
from deepscope.graph.namespace import module_namespace
from deepscope.sources._macs import function_macs, module_macs, normalize_op
from deepscope.sources._module_tree import is_keras, named_modules, named_parameters
from deepscope.sources._torch_trace import (
    Args,
    Builder,
    Kwargs,
    Params,
    Ref,
    flatten,
    is_leaf_module,
    tensor_meta,
    tree_map,
)

_NO_OPS = {"to", "contiguous", "clone", "detach"}

__all__ = ["trace_hooks"]


def _fn_name(func: Any) -> str:
    name = str(getattr(func, "__name__", func))
    if name == "__get__":  # a Tensor property such as .T or .mT
        name = str(getattr(getattr(func, "__self__", None), "__name__", name))
    return name


class _Recorder:
    def __init__(self, model: nn.Module, params: dict[int, ParamRef]) -> None:
        self.b = Builder()
        self.params = params
        self.names = {id(m): name for name, m in named_modules(model)}
        self.refs: dict[int, Ref] = {}
        self.alive: list[torch.Tensor] = []  # keeps ids unique while tracing
        self.stack: list[str] = []
        self.leaf_depth = 0
        self.pending: list[tuple[nn.Module, list[Ref]]] = []
        # Keras layers run torch functions inside: their MACs are the sum of those
        self.keras = is_keras(model)
        self.inner_macs = 0

    def ref(self, t: torch.Tensor) -> Ref:
        r = self.refs.get(id(t))
        if r is not None:
            return r
        return Ref(None, 0, tensor_meta(t), self.params.get(id(t)))

    def produce(self, nid: str, value: Any) -> list[TensorMeta]:
        metas: list[TensorMeta] = []
        for i, t in enumerate(flatten(value, torch.Tensor)):
            m = tensor_meta(t)
            metas.append(m)
            self.refs[id(t)] = Ref(nid, i, m)
            self.alive.append(t)
        return metas

    def namespace(self) -> str:
        return module_namespace(self.stack[-1]) if self.stack else ""

    def pre_hook(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        self.stack.append(self.names.get(id(module), ""))
        if is_leaf_module(module) or self.leaf_depth:
            if self.leaf_depth == 0:
                ins = [self.ref(t) for t in flatten((args, kwargs), torch.Tensor)]
                self.pending.append((module, ins))
                self.inner_macs = 0
            self.leaf_depth += 1

    def post_hook(self, module: nn.Module, args: Any, kwargs: Any, output: Any) -> None:
        name = self.stack.pop()
        if not self.leaf_depth:
            return
        self.leaf_depth -= 1
        if self.leaf_depth:
            return
        mod, ins = self.pending.pop()
        nid = self.b.new_id(name.replace(".", "_") or type(mod).__name__.lower())
        outs = self.produce(nid, output)
        mparams = [self.params[id(p)] for _, p in named_parameters(mod) if id(p) in self.params]
        macs = module_macs(mod, [r.meta for r in ins], outs[0] if outs else None)
        self.b.add(
            nid,
            type(mod).__name__.lower(),
            label=name or type(mod).__name__,
            namespace=module_namespace(name),
            inputs=ins,
            outputs=outs,
            params=mparams,
            macs=macs or (self.inner_macs if is_keras(mod) else 0),
            attrs={"moduleType": type(mod).__name__, "repr": mod.extra_repr()[:200]},
        )

    def function(self, func: Any, args: Any, kwargs: Any, out: Any) -> None:
        if not flatten(out, torch.Tensor):
            return
        name = _fn_name(func)
        if self.leaf_depth:
            if self.keras:
                margs, mkwargs = (
                    tree_map(tuple(args), tensor_meta),
                    tree_map(dict(kwargs), tensor_meta),
                )
                self.inner_macs += function_macs(
                    name, margs, mkwargs, tensor_meta(flatten(out, torch.Tensor)[0])
                )
            return
        ins = [self.ref(t) for t in flatten((args, kwargs), torch.Tensor)]
        op = normalize_op(name)
        if self.keras and op in _NO_OPS and isinstance(out, torch.Tensor) and len(ins) == 1:
            if ins[0].meta == tensor_meta(out) and ins[0].param is None:
                self.refs[id(out)] = ins[0]  # Keras's dtype/device/layout checks: no node
                self.alive.append(out)
                return
        nid = self.b.new_id(op)
        outs = self.produce(nid, out)
        margs = tree_map(tuple(args), tensor_meta)
        mkwargs = tree_map(dict(kwargs), tensor_meta)
        self.b.add(
            nid,
            op,
            label=name,
            namespace=self.namespace(),
            inputs=ins,
            outputs=outs,
            macs=function_macs(name, margs, mkwargs, outs[0]),
            attrs={"target": name},
        )


class _Mode(TorchFunctionMode):
    def __init__(self, rec: _Recorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.rec.function(func, args, kwargs, out)
        return out


def trace_hooks(model: nn.Module, args: Args, kwargs: Kwargs, params: Params) -> Graph:
    """Trace one eager forward. Hooks are removed whatever happens."""
    rec = _Recorder(model, params)
    for i, a in enumerate(args):
        _input(rec, f"input_{i}" if len(args) + len(kwargs) > 1 else "input", a)
    for k, v in kwargs.items():
        _input(rec, str(k), v)
    handles = []
    try:
        for _, m in named_modules(model):
            handles.append(m.register_forward_pre_hook(rec.pre_hook, with_kwargs=True))
            handles.append(m.register_forward_hook(rec.post_hook, with_kwargs=True))
        with _Mode(rec):
            out = model(*args, **kwargs)
    finally:
        for h in handles:
            h.remove()
    ins = [rec.ref(t) for t in flatten(out, torch.Tensor)]
    nid = rec.b.new_id("output")
    rec.b.add(
        nid, "output", label="output", namespace="", inputs=ins, outputs=[r.meta for r in ins]
    )
    rec.b.outputs.append(nid)
    return rec.b.graph({})


def _input(rec: _Recorder, label: str, value: Any) -> None:
    nid = rec.b.new_id(label)
    outs = rec.produce(nid, value)
    rec.b.add(nid, "input", label=label, namespace="", inputs=[], outputs=outs)
    rec.b.inputs.append(nid)
