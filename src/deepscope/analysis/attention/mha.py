"""Attention weights of every ``nn.MultiheadAttention`` in a model.

A forward pre-hook (with kwargs) asks each call for ``need_weights=True,
average_attn_weights=False``; a forward hook keeps the requested heads of one batch item and
hands the caller the output it asked for (no weights, or head-averaged ones), so the model's
own code sees no difference. The fast path of ``nn.TransformerEncoder(Layer)`` skips the
module's forward, so it is switched off for the call and switched back after. Every hook
lives in a `HookSet` and is removed when the call returns or raises.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from deepscope.analysis.attention.base import Collected, Selection, call_model, select_item
from deepscope.capture.hooks import HookSet

_SIG = inspect.signature(nn.MultiheadAttention.forward)


def mha_layers(model: nn.Module) -> list[tuple[str, nn.MultiheadAttention]]:
    """`(name, module)` of every ``nn.MultiheadAttention`` in `model` (itself included)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]


@contextmanager
def _fastpath_off() -> Iterator[None]:
    backend = torch.backends.mha
    before = backend.get_fastpath_enabled()
    backend.set_fastpath_enabled(False)
    try:
        yield
    finally:
        backend.set_fastpath_enabled(before)


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = _SIG.bind(None, *args, **kwargs)  # None stands for self
    arguments = dict(bound.arguments)
    arguments.pop("self", None)
    return arguments


class _Recorder:
    """The hooks of one module: ask for per-head weights, keep some, answer as asked."""

    def __init__(self, name: str, sel: Selection, out: Collected) -> None:
        self.name, self.sel, self.out = name, sel, out
        self.asked: list[tuple[bool, bool]] = []

    def pre(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        arguments = _arguments(args, kwargs)
        need = bool(arguments.get("need_weights", True))
        average = bool(arguments.get("average_attn_weights", True))
        self.asked.append((need, average))
        arguments["need_weights"] = True
        arguments["average_attn_weights"] = False
        return (), arguments

    def post(
        self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any
    ) -> Any:
        need, average = self.asked.pop()
        attn_out, weights = output
        index = self.out.seen
        self.out.seen += 1
        if self.sel.wants_layer(self.name, index):
            w = select_item(weights, self.sel.item, batched=weights.dim() == 4)
            heads = self.sel.head_indices(w.shape[0])
            rows = self.sel.query_rows(w.shape[1])
            self.out.n_queries = self.out.n_queries or w.shape[1]
            kept = w[heads][:, rows.start : rows.stop : rows.step]
            self.out.keep(self.name, kept, self.sel, w.shape[0])
        if not need:
            return attn_out, None
        return attn_out, weights.mean(dim=-3) if average else weights


def collect_mha(model: nn.Module, inputs: Any, sel: Selection) -> Collected:
    """Run `model` on `inputs` once and keep the selected weights of its MHA modules."""
    out = Collected(meta={"path": "mha"})
    with HookSet() as hooks, _fastpath_off():
        for name, module in mha_layers(model):
            rec = _Recorder(name or "model", sel, out)
            hooks.add(module.register_forward_pre_hook(rec.pre, with_kwargs=True))
            hooks.add(module.register_forward_hook(rec.post, with_kwargs=True))
        out.output = call_model(model, inputs)
    out.meta["note"] = (
        "nn.MultiheadAttention computes every head; the heads not requested were dropped "
        "right after the call"
    )
    return out
