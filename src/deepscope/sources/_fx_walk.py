"""The one walk over an fx graph that both fx-based trace paths share.

``torch.fx`` symbolic tracing (`_torch_fx`) and ``torch.export`` (`_torch_export`) both
give an `fx.Graph`; they differ only in where a node's value comes from (a recorded
forward, or the fake tensor in ``node.meta["val"]``), which nodes stand for parameters
and how a call is named. `FxWalker` does the rest once: ``getitem`` on containers becomes
plain edges, values without tensors make no node, inputs and outputs become the graph's
boundary nodes, and every call node gets its `Ref` outputs for the nodes after it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from typing import Any

from torch import fx

from deepscope.graph.ir import Graph, TensorMeta
from deepscope.graph.namespace import module_namespace
from deepscope.sources._macs import function_macs, normalize_op
from deepscope.sources._torch_trace import Builder, Ref, flatten, tree_map

__all__ = ["NOT_CONSTANT", "FxWalker", "stack_namespace", "tree_map_ref_meta"]

NOT_CONSTANT: Any = object()
"""What `FxWalker.constant` returns for a node that is drawn (not a parameter or attribute)."""

_SELF = re.compile(r"^(L\['self'\]\.?|L__self__\.?)")


def stack_namespace(n: fx.Node) -> str:
    """The namespace of the innermost module in a node's ``nn_module_stack`` ("" if none)."""
    stack = n.meta.get("nn_module_stack")
    if not stack:
        return ""
    path = str(list(stack.values())[-1][0])
    return module_namespace(_SELF.sub("", path))


class FxWalker:
    """Builds a `Graph` from fx nodes in order. Subclasses give `value` and `call`, and may
    override `constant`, `input_label` and `namespace`."""

    def __init__(self) -> None:
        self.builder = Builder()
        self.trees: dict[fx.Node, Any] = {}

    def value(self, n: fx.Node) -> Any:
        """The node's result as a tree whose tensors are `TensorMeta`."""
        raise NotImplementedError

    def constant(self, n: fx.Node, value: Any) -> Any:
        """The `Ref` tree of a node that is not drawn (a parameter or attribute), else
        `NOT_CONSTANT`."""
        return NOT_CONSTANT

    def input_label(self, n: fx.Node) -> str:
        """The label of a graph input node."""
        return n.name

    def namespace(self, n: fx.Node) -> str:
        """The namespace of a call node."""
        return stack_namespace(n)

    def call(
        self, n: fx.Node, nid: str, arg_refs: Any, ins: list[Ref], outs: list[TensorMeta]
    ) -> None:
        """Add the node for a call (`ins` are its tensor inputs, `outs` its outputs)."""
        raise NotImplementedError

    def add_function(
        self,
        n: fx.Node,
        nid: str,
        name: str,
        target: str,
        arg_refs: Any,
        ins: list[Ref],
        outs: list[TensorMeta],
    ) -> None:
        """Add a function or ATen op node named `name`, with its MACs from the arguments."""
        margs, mkwargs = tree_map_ref_meta(arg_refs)
        self.builder.add(
            nid,
            normalize_op(name),
            label=n.name,
            namespace=self.namespace(n),
            inputs=ins,
            outputs=outs,
            macs=function_macs(name, margs, mkwargs, outs[0] if outs else None),
            attrs={"target": target},
        )

    def walk(self, nodes: Iterable[fx.Node]) -> Graph:
        """Visit every node in order and return the graph."""
        for n in nodes:
            self._visit(n)
        return self.builder.graph({})

    def _visit(self, n: fx.Node) -> None:
        b, trees = self.builder, self.trees
        value = self.value(n)
        const = self.constant(n, value)
        if const is not NOT_CONSTANT:
            trees[n] = const
            return
        if n.op == "call_function" and n.target is operator.getitem:
            parent = trees.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            if parent is not None and not isinstance(parent, Ref):
                trees[n] = parent[n.args[1]]  # type: ignore[index]
                return
        arg_refs = fx.node.map_arg((n.args, n.kwargs), lambda a: trees.get(a))
        ins = flatten(arg_refs)
        if n.op == "output":
            nid = b.new_id("output")
            outputs = [r.meta for r in ins]
            b.add(nid, "output", label="output", namespace="", inputs=ins, outputs=outputs)
            b.outputs.append(nid)
            return
        metas = flatten(value, TensorMeta)
        if n.op != "placeholder" and not metas:
            trees[n] = value  # shape arithmetic and other non-tensor values: no node
            return
        nid = b.new_id(n.name)
        counter = iter(range(len(metas)))
        trees[n] = tree_map(value, lambda m, c=counter: Ref(nid, next(c), m), TensorMeta)
        outs = [r.meta for r in flatten(trees[n])]
        if n.op == "placeholder":
            b.add(nid, "input", label=self.input_label(n), namespace="", inputs=[], outputs=outs)
            b.inputs.append(nid)
            return
        self.call(n, nid, arg_refs, ins, outs)


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
