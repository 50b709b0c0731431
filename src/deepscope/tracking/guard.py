"""The non-finite guard of `run.watch`: the first module (in forward order) whose output
holds NaN/Inf and the first parameters (in backward order) whose gradients do, with the
iteration, at the cost of a few tiny reductions per iteration.

How it stays cheap:

* Forward. Each watched module's output is remembered by reference (no kernel). When the
  forward ends (the root module returns, or the first gradient arrives when the root is
  never called, as under Lightning), only the final output is reduced. NaN and Inf
  propagate, so a clean final output clears the iteration; on a hit, the remembered
  outputs are scanned in order to name the first bad module. On CUDA no host sync is
  spent: one multi-tensor max-abs reduction over every remembered output is copied to
  pinned memory asynchronously and read at a later iteration, once the GPU is done.
* Backward. A NaN/Inf made anywhere in backward flows into every upstream gradient, so
  every step checks the gradients of the small parameters (biases, norm scales: about
  0.1% of a CNN's weights) once the backward ends; on a hit, all gradients are scanned
  in backward order. On CUDA every gradient is checked (one multi-tensor reduction,
  read asynchronously as above). Logged steps look at every value anyway.

Example:
    >>> import torch
    >>> guard = Guard([("w", torch.nn.Parameter(torch.ones(2)))], defer=False)
    >>> guard.output("fc", torch.tensor([1.0, float("nan")]), iteration=3, limit=100)
    >>> guard.forward_done(torch.tensor([float("nan")]), iteration=3)
    [Finding(kind='nonfinite_activation', names=['fc'], iteration=3)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

# a parameter at most this big (or of dim <= 1) has its gradient checked every step on CPU
SMALL_PARAM = 1024
_INF = float("inf")


@dataclass
class Finding:
    """A non-finite value: `names` are modules (forward order) or parameters (backward
    order), first is where it starts."""

    kind: str  # "nonfinite_activation" | "nonfinite_gradient"
    names: list[str]
    iteration: int


@dataclass
class _Pending:
    """Per-tensor max-abs flags on their way to the host (CUDA), read once `event` is done."""

    kind: str
    names: list[str]
    iteration: int
    flags: torch.Tensor  # pinned host buffer
    event: Any  # torch.cuda.Event


def _max_abs(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One max-abs per tensor, stacked (NaN and Inf survive it; finite values never
    overflow it, unlike a sum)."""
    norms = torch._foreach_norm(list(tensors), _INF)
    return torch.stack([n.float().to(norms[0].device) for n in norms])


def _bad(t: torch.Tensor) -> bool:
    return not bool(torch.isfinite(t).all())


class Guard:
    """Collects one iteration's outputs and gradients; returns `Finding`s when asked."""

    def __init__(self, params: Sequence[tuple[str, torch.Tensor]], *, defer: bool) -> None:
        self.defer = defer  # CUDA without raise_on_nonfinite: never wait for the device
        self._small = {n for n, p in params if p.dim() <= 1 or p.numel() <= SMALL_PARAM}
        if not self._small and params:
            self._small = {min(params, key=lambda np_: np_[1].numel())[0]}
        self._outs: list[tuple[str, torch.Tensor]] = []
        self._grads: list[tuple[str, torch.Tensor]] = []  # (name, parameter), backward order
        self._pending: list[_Pending] = []
        self._backward_hooked = False
        self._grad_iteration = 0
        self.found: list[Finding] = []  # findings made off the main thread, read by `collect`

    # ---------------------------------------------------------------- forward
    def output(self, call: str, t: torch.Tensor, iteration: int, limit: int) -> None:
        """Remember a module's output (by reference) for this iteration; past `limit`
        outputs with no backward (forward passes with autograd on but never trained on),
        check what is held and let it go."""
        if len(self._outs) >= limit:
            self.found.extend(self.forward_done(None, iteration))
        self._outs.append((call, t.detach()))

    def forward_done(self, out: torch.Tensor | None, iteration: int) -> list[Finding]:
        """The forward is over: check `out` (the model's output; None → the last module
        output) and, on a hit, name the first module whose output was not finite."""
        outs, self._outs = self._outs, []
        if not outs:
            return []
        if self.defer and outs[0][1].is_cuda:
            names = [n for n, _ in outs]
            self._send("nonfinite_activation", names, _max_abs([t for _, t in outs]), iteration)
            return []
        final = out if out is not None else outs[-1][1]
        if not _bad(final.detach().sum(dtype=torch.float32)):
            return []
        names = [n for n, t in outs if _bad(t)]
        return [Finding("nonfinite_activation", names, iteration)] if names else []

    # --------------------------------------------------------------- backward
    def grad(self, name: str, p: torch.Tensor, iteration: int) -> None:
        """A parameter's gradient was accumulated: remember it; at the first one of a
        backward pass, ask autograd to call `backward_done` when the pass ends."""
        self._grads.append((name, p))
        self._grad_iteration = iteration
        if not self._backward_hooked:
            if self._outs:  # the root module never returned (Lightning calls submodules)
                self.found.extend(self.forward_done(None, iteration))
            self._backward_hooked = True
            try:
                engine = torch.autograd.Variable._execution_engine  # type: ignore[attr-defined]
                engine.queue_callback(self._backward_done)
            except Exception:  # noqa: BLE001 - no end-of-backward callback: `collect` checks
                pass

    def _backward_done(self) -> None:
        self._backward_hooked = False
        self.found.extend(self.backward_done(self._grad_iteration))

    def backward_done(self, iteration: int) -> list[Finding]:
        """Check the gradients this backward accumulated (while they still exist)."""
        grads, self._grads = self._grads, []
        present = [(n, p.grad) for n, p in grads if p.grad is not None]
        if not present:
            return []
        if self.defer and present[0][1].is_cuda:
            names = [n for n, _ in present]
            self._send("nonfinite_gradient", names, _max_abs([g for _, g in present]), iteration)
            return []
        small = [g for n, g in present if n in self._small]
        if small and not _bad(_max_abs(small)):
            return []
        names = [n for n, g in present if _bad(g)]
        return [Finding("nonfinite_gradient", names, iteration)] if names else []

    # ------------------------------------------------------------------ CUDA
    def _send(self, kind: str, names: list[str], flags: torch.Tensor, iteration: int) -> None:
        buf = torch.empty(flags.shape, dtype=flags.dtype, pin_memory=True)
        buf.copy_(flags, non_blocking=True)
        event = torch.cuda.Event()  # type: ignore[no-untyped-call]
        event.record()
        self._pending.append(_Pending(kind, names, iteration, buf, event))

    def collect(self, *, wait: bool = False) -> list[Finding]:
        """Findings made since the last call: end-of-backward checks, and device flags
        that have arrived (all of them when `wait`)."""
        out, self.found = self.found, []
        self._backward_hooked = False
        if self._grads:  # the end-of-backward callback did not run
            out.extend(self.backward_done(self._grad_iteration))
        keep: list[_Pending] = []
        for p in self._pending:
            if not (wait or p.event.query()):
                keep.append(p)
                continue
            p.event.synchronize()
            bad = ~torch.isfinite(p.flags)
            names = [p.names[i] for i in bad.nonzero()[:, 0].tolist()]
            if names:
                out.append(Finding(p.kind, names, p.iteration))
        self._pending = keep
        return out

    def clear(self) -> None:
        """Forget this iteration's references (the model's forward raised, or unwatch)."""
        self._outs, self._grads, self._backward_hooked = [], [], False
