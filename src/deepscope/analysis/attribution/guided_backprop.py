"""Guided backpropagation (Springenberg et al., 2015) and the ReLU override it shares with
deconvnet: every ReLU passes back only positive gradients.

`relu_override(rule)` is a context manager that swaps the backward of every ReLU run inside
it: `nn.ReLU` modules (they call `F.relu`), the functional forms (`F.relu`, `torch.relu`,
`Tensor.relu`, in-place variants) and Keras' `relu` activation (torch backend: `F.relu`).
One `TorchFunctionMode` catches them all, so no module is touched, and leaving the block —
normally or by an exception — restores plain autograd. Rules (captum's
`ModifiedReluGradientAttribution`):

- "guided": grad_in = relu(grad_out · [x > 0]) (guided backprop),
- "deconv": grad_in = relu(grad_out) (deconvnet; the forward mask is ignored).

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> GuidedBackprop(net).attribute(torch.rand(2, 4), target=1).attributions.shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from deepscope.analysis.attribution.base import GradientAttribution, Target
from deepscope.analysis.attribution.result import AttributionResult

RULES = ("guided", "deconv")


class _GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        out = x.clamp_min(0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = ctx.saved_tensors[0]
        return (grad * (out > 0)).clamp_min(0)


class _DeconvReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.clamp_min(0)


_RELUS: set[Callable[..., Any]] = {
    F.relu,
    F.relu_,
    torch.relu,
    torch.relu_,
    torch.Tensor.relu,
    torch.Tensor.relu_,
}


class _ReLUMode(TorchFunctionMode):
    """Routes every ReLU through a custom autograd function while active."""

    def __init__(self, fn: type[torch.autograd.Function]) -> None:
        super().__init__()
        self.fn = fn
        self.calls = 0

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func in _RELUS and args and isinstance(args[0], torch.Tensor):
            x = args[0]
            if x.is_floating_point() and (x.requires_grad or torch.is_grad_enabled()):
                self.calls += 1
                # out of place (the in-place forms' callers use the returned tensor)
                return self.fn.apply(x)  # type: ignore[no-untyped-call]
        return func(*args, **kwargs)


@contextmanager
def relu_override(rule: str = "guided") -> Iterator[_ReLUMode]:
    """Within the block every ReLU backpropagates by `rule` ("guided" or "deconv"); the
    override ends with the block, also when it raises. Yields the mode (`.calls` counts the
    ReLUs it replaced)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, not {rule!r}")
    mode = _ReLUMode(_GuidedReLU if rule == "guided" else _DeconvReLU)
    with mode:
        yield mode


class GuidedBackprop(GradientAttribution):
    """The input gradient with every ReLU passing back only positive gradients where its
    input was positive (captum `GuidedBackprop`); signed, input-shaped. Models without ReLUs
    (GELU transformers) get their plain gradient."""

    name = "guided_backprop"
    rule = "guided"

    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        with relu_override(self.rule) as mode:
            grad, _, _ = self.gradients(inputs, target)
        return self.result(grad, inputs, target, meta={"relus": mode.calls})


__all__ = ["RULES", "GuidedBackprop", "relu_override"]
