"""The ``torch.export`` (non-strict) trace path: an ATen-level graph whose shapes come from
fake tensors (no real forward), with each op's module path from ``nn_module_stack``.

Opt-in (``trace="export"``): it costs seconds per model where fx and the hook trace cost
milliseconds, and draws ATen ops rather than the modules and functions the user wrote."""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from deepscope.graph.ir import Graph, ParamRef, TensorMeta
from deepscope.sources._fx_walk import NOT_CONSTANT, FxWalker
from deepscope.sources._torch_trace import Args, Kwargs, Params, Ref, tensor_meta, tree_map

__all__ = ["trace_export"]


def _op_name(target: Any) -> str:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(getattr(packet, "__name__", target))
    return str(getattr(target, "__name__", target))


class _ExportWalker(FxWalker):
    def __init__(self, model: nn.Module, ep: Any, params: dict[int, ParamRef]) -> None:
        super().__init__()
        self.model, self.params = model, params
        self.kinds: dict[str, tuple[str, str | None]] = {}
        for spec in ep.graph_signature.input_specs:
            name = getattr(spec.arg, "name", None)
            if name is not None:
                self.kinds[name] = (spec.kind.name, spec.target)

    def value(self, n: fx.Node) -> Any:
        return tree_map(n.meta.get("val"), tensor_meta)

    def constant(self, n: fx.Node, value: Any) -> Any:
        if n.op != "placeholder":
            return NOT_CONSTANT
        kind, target = self.kinds.get(n.name, ("USER_INPUT", None))
        if kind == "USER_INPUT":
            return NOT_CONSTANT
        p = _param(self.model, target, self.params) if kind == "PARAMETER" else None
        return tree_map(value, lambda m: Ref(None, 0, m, p), TensorMeta)

    def call(
        self, n: fx.Node, nid: str, arg_refs: Any, ins: list[Ref], outs: list[TensorMeta]
    ) -> None:
        self.add_function(n, nid, _op_name(n.target), str(n.target), arg_refs, ins, outs)


def trace_export(model: nn.Module, args: Args, kwargs: Kwargs, params: Params) -> Graph:
    """Export with ``strict=False`` and build the graph from node metadata."""
    ep = torch.export.export(model, args, kwargs, strict=False)
    return _ExportWalker(model, ep, params).walk(ep.graph.nodes)


def _param(model: nn.Module, target: str | None, params: dict[int, ParamRef]) -> ParamRef | None:
    if target is None:
        return None
    try:
        return params.get(id(model.get_parameter(target)))
    except AttributeError:
        return None
