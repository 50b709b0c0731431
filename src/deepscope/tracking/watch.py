"""`run.watch(model)`: weights, gradients and activations over training, cheaply, plus the
non-finite guard and the diagnosis rules.

Example:
    >>> run = deepscope.init(logdir="runs")                     # doctest: +SKIP
    >>> run.watch(model, every=100)                             # doctest: +SKIP
    >>> for x, y in loader:                                     # doctest: +SKIP
    ...     loss = F.cross_entropy(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
    ...     run.log({"loss": loss})

The watcher's clock is the model's training iteration: the number of forward passes of
the watched model made with gradients enabled (0-based). Every `every` iterations it
reduces weights (each module's as it returns, while they are in cache; any left at the
first gradient), activations (as each module returns) and gradients (as each is
accumulated) on their device, and at the next iteration (after the optimizer step) the
update ratio ||dw||/||w||; then everything crosses to the host in one copy, is logged and
checked by the rules. Work buffers live for one logged iteration (with `every=1`, the
weight snapshots are reused from one iteration to the next). Between logged iterations only the non-finite guard runs
(`deepscope.tracking.guard`: a reduction of the model's output and of the small
parameters' gradients per iteration; a scan only when one of them is not finite).

A Keras 3 model on the torch backend is watched through its Keras layers: modules and
parameters are named by Keras layer names (``weights/conv2d.kernel``, ``act/dense_1/mean``;
see `deepscope.sources._module_tree`).
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from deepscope.errors import OptionalDependencyError

try:
    import torch
    from torch import nn
except ModuleNotFoundError as exc:
    raise OptionalDependencyError(
        "run.watch needs PyTorch: pip install 'deepscope[torch]'"
    ) from exc

from deepscope.analysis.diagnostics.rules import Diagnoser, Diagnosis, StepStats
from deepscope.capture.hooks import find_tensor
from deepscope.capture.reducers import (
    ACT_FIELDS,
    Scratch,
    activation_stats,
    decode_summary,
    summary_size,
    tensor_summary,
)
from deepscope.errors import DeepscopeError
from deepscope.graph.namespace import module_namespace, owner_namespace
from deepscope.sources._module_tree import children, named_modules, named_parameters, own_parameters
from deepscope.tracking.guard import Finding, Guard
from deepscope.tracking.histogram import HistogramData

if TYPE_CHECKING:
    from deepscope.tracking.run import Run

WHAT = ("weights", "grads", "activations")
_RELU_LIKE = (nn.ReLU, nn.ReLU6)
_SATURATING: dict[type[nn.Module], str] = {
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
    nn.Hardtanh: "tanh",
}


def _combine_norm(into: dict[str, float], key: str, norm: float) -> None:
    """A module's gradient norm over all its (2-D+) parameters: sqrt of the summed squares."""
    old = into.get(key)
    into[key] = norm if old is None else math.hypot(old, norm)


def _combine_max(into: dict[str, float], key: str, value: float) -> None:
    """A module's update ratio: the largest of its parameters' (NaN wins)."""
    old = into.get(key)
    into[key] = (
        value if old is None or math.isnan(value) else (old if math.isnan(old) else max(old, value))
    )


class NonFiniteError(DeepscopeError, FloatingPointError):
    """Raised by `watch(..., raise_on_nonfinite=True)` at the first NaN/Inf."""


def _norm(hist: HistogramData) -> float:
    """The L2 norm of the tensor a histogram sketch came from."""
    if hist.n_nan:
        return math.nan
    if hist.n_posinf or hist.n_neginf:
        return math.inf
    return math.sqrt(max(hist.sum_sq, 0.0))


class Watcher:
    """Hooks on one model, logging into one run. Created by `Run.watch`; `close()` removes
    every hook (also called by `Run.unwatch` and `Run.finish`).

    `clock`, when given, returns the training step that the running forward belongs to (a
    framework's global step, as the callbacks pass it): an iteration starts when its value
    changes, and logged steps are its values, so histograms line up with the framework's
    logged metrics (and gradient-accumulation micro-batches share one step).
    """

    def __init__(
        self,
        run: Run,
        model: nn.Module,
        every: int = 100,
        what: Iterable[str] = WHAT,
        layers: Iterable[str] | None = None,
        raise_on_nonfinite: bool = False,
        bins: int = 64,
        guard: bool = True,
        strict: bool = False,
        clock: Callable[[], int] | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.what = set(what)
        unknown = self.what - set(WHAT)
        if unknown:
            raise ValueError(f"unknown 'what' entries {sorted(unknown)}; choose from {WHAT}")
        self.run, self.model, self.every, self.bins = run, model, every, bins
        self.raise_on_nonfinite, self.guard = raise_on_nonfinite, guard
        self.iteration = -1
        self._clock = clock
        self.diagnoser = Diagnoser()
        self._patterns = list(layers) if layers is not None else None
        self._params = [(n, p) for n, p in named_parameters(model) if p.requires_grad]
        self._modules = [
            (n or type(model).__name__, m) for n, m in named_modules(model) if self._selected(n, m)
        ]
        self._logging = False
        self._broken, self._strict = False, strict
        defer = not raise_on_nonfinite  # on CUDA, read the guard's flags without waiting
        self._guard = Guard(self._params, defer=defer)
        self._outs_limit = 4 * len(self._modules) + 64
        self._acts: list[tuple[str, nn.Module, torch.Tensor]] = []
        self._grad_summaries: dict[str, torch.Tensor] = {}
        self._weight_summaries: dict[str, torch.Tensor] = {}
        self._snapshot: dict[str, torch.Tensor] = {}
        self._spare: dict[str, torch.Tensor] = {}  # every=1: last snapshot, reused
        self._to_read: dict[str, torch.Tensor] = {}  # weights this logged step still needs
        owner = {id(p): n for n, p in self._params}
        self._owned = {
            id(m): [(owner[id(p)], p) for _, p in own_parameters(m) if id(p) in owner]
            for _, m in self._modules
        }
        self._scratch: Scratch | None = None
        self._pending_step: int | None = None
        self._saw_backward = False
        self._nan_reported: set[str] = set()
        self._handles: list[Any] = []
        self._install()

    # ----------------------------------------------------------------- hooks
    def _selected(self, name: str, module: nn.Module) -> bool:
        if self._patterns is None:
            return not children(module)  # leaf modules
        return any(fnmatch.fnmatchcase(name, p) for p in self._patterns)

    def _install(self) -> None:
        try:
            model, protect = self.model, self._protect
            self._handles.append(model.register_forward_pre_hook(protect(self._on_pre)))
            self._handles.append(model.register_forward_hook(protect(self._on_root_post)))
            for name, module in self._modules:
                hook = protect(self._make_module_hook(name))
                self._handles.append(module.register_forward_hook(hook))
            for name, p in self._params:
                hook = protect(self._make_grad_hook(name))
                self._handles.append(p.register_post_accumulate_grad_hook(hook))  # type: ignore[no-untyped-call]
        except Exception:
            self.close()
            raise

    def _protect(self, fn: Any) -> Any:
        """Wrap a hook so that an internal error stops the watcher, never the training:
        one warning, then every hook does nothing (NonFiniteError, asked for, still raises)."""

        def hook(*args: Any) -> None:
            if self._broken:
                return
            try:
                fn(*args)
            except NonFiniteError:
                raise
            except Exception as exc:  # noqa: BLE001 - logging never crashes training
                self._broken = True
                self._guard.clear()
                if self._strict:
                    raise
                warnings.warn(
                    f"deepscope: watch({type(self.model).__name__}) stopped after an internal "
                    f"error ({exc!r}); training goes on. Please report it with the traceback "
                    "from `run.watch(..., strict=True)` if you can reproduce it.",
                    RuntimeWarning,
                    stacklevel=2,
                )

        return hook

    def close(self) -> None:
        """Remove every hook and log what the last logged iteration still holds."""
        handles, self._handles = self._handles, []
        self.raise_on_nonfinite = False  # never raise from cleanup
        for h in handles:
            h.remove()
        if not self._broken:
            self._protect(self._close_out)()
        self._guard.clear()
        self._to_read, self._snapshot, self._spare = {}, {}, {}

    def _close_out(self) -> None:
        if self.guard:
            self._handle(self._guard.forward_done(None, max(self.iteration, 0)))
            self._handle(self._guard.collect(wait=True))
        if self._pending_step is not None:
            self._finish_logged_iteration(with_updates=False)

    def _training(self) -> bool:
        return torch.is_grad_enabled()

    def _on_pre(self, module: nn.Module, args: Any) -> None:
        if self._training():
            self._tick()

    def _tick(self) -> None:
        """The clock: the first watched forward after a backward pass (or the very first
        one) starts an iteration. Called when the root module starts and when any watched
        module returns, so it works whether or not the root itself is called (Lightning
        calls submodules from `training_step`)."""
        if self._clock is not None:
            if self._clock() != self.iteration:
                self._new_iteration()
        elif self.iteration < 0 or self._saw_backward:
            self._new_iteration()

    def _new_iteration(self) -> None:
        if self.guard:
            self._handle(self._guard.collect())
        if self._pending_step is not None:
            self._finish_logged_iteration(with_updates=True)
        self.iteration = self.iteration + 1 if self._clock is None else self._clock()
        self._saw_backward = False
        self._logging = self.iteration % self.every == 0
        if self._logging:
            self._start_logged_iteration()

    def _make_module_hook(self, name: str) -> Any:
        counts: dict[int, int] = {}

        def hook(module: nn.Module, args: Any, out: Any) -> None:
            if not self._training():
                return
            self._tick()
            t = find_tensor(out)
            if t is None or not t.is_floating_point():
                return
            seen = counts.get(self.iteration, 0)
            counts.clear()
            counts[self.iteration] = seen + 1
            call = name if seen == 0 else f"{name}#{seen + 1}"
            if self.guard:
                self._guard.output(call, t, self.iteration, self._outs_limit)
            if self._to_read:
                self._read_weights(self._owned.get(id(module), ()))
            if self._logging and "activations" in self.what:
                kind = "relu" if isinstance(module, _RELU_LIKE) else _SATURATING.get(type(module))
                self._acts.append((call, module, activation_stats(t, kind, scratch=self._scratch)))

        return hook

    def _on_root_post(self, module: nn.Module, args: Any, out: Any) -> None:
        if self._training() and self.guard:
            t = find_tensor(out)
            final = t if t is not None and t.is_floating_point() else None
            self._handle(self._guard.forward_done(final, self.iteration))

    def _make_grad_hook(self, name: str) -> Any:
        def hook(p: torch.Tensor) -> None:
            self._saw_backward = True
            if self._to_read:
                self._read_weights(list(self._to_read.items()))
            g = p.grad
            if g is None:
                return
            if self.guard:
                self._guard.grad(name, p, self.iteration)
            if self._logging and "grads" in self.what:
                self._grad_summaries[name] = tensor_summary(g, self.bins, scratch=self._scratch)

        return hook

    def _handle(self, findings: list[Finding]) -> None:
        for f in findings:
            if f.kind == "nonfinite_activation":
                self._report_nonfinite(f.kind, f.names[0], "output", step=f.iteration)
            else:
                others = f.names[1:5]
                self._report_nonfinite(f.kind, f.names[0], "gradient", others, f.iteration)

    def _report_nonfinite(
        self,
        kind: str,
        layer: str,
        what: str,
        others: list[str] | None = None,
        step: int | None = None,
    ) -> None:
        step = max(self.iteration, 0) if step is None else step
        if kind not in self._nan_reported:
            more = f" (also: {', '.join(others)})" if others else ""
            msg = (
                f"first NaN/Inf {what} at iteration {step}: '{layer}'{more}. Inspect its inputs "
                "and weights at that step; common causes are a too-high learning rate, log/sqrt/"
                "division of zero or negative values, and fp16 overflow."
            )
            self._emit([Diagnosis(kind, "error", layer, msg, step)])
            self._nan_reported.add(kind)
        if self.raise_on_nonfinite:
            raise NonFiniteError(f"non-finite {what} in '{layer}' at iteration {step}")

    # --------------------------------------------------------- logged steps
    def _start_logged_iteration(self) -> None:
        self._pending_step = self.iteration
        self._acts.clear()
        self._grad_summaries.clear()
        self._scratch = Scratch()
        self._to_read = dict(self._params)

    def _read_weights(self, items: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Summarise and snapshot weights not read yet this logged iteration. Called as
        each watched module returns (its weights were just read, so they sit in cache),
        and for the rest at the first gradient (before any optimizer step)."""
        spare = self._spare
        with torch.no_grad():
            for name, p in items:
                if self._to_read.pop(name, None) is None:
                    continue
                if "weights" in self.what:
                    self._weight_summaries[name] = tensor_summary(
                        p, self.bins, scratch=self._scratch
                    )
                if "grads" in self.what and p.dim() >= 2:
                    old = spare.pop(name, None)
                    if old is not None and old.shape == p.shape and old.dtype == p.dtype:
                        self._snapshot[name] = old.copy_(p.detach())  # warm memory
                    else:
                        self._snapshot[name] = p.detach().clone()

    def _finish_logged_iteration(self, with_updates: bool) -> None:
        step = self._pending_step
        assert step is not None
        self._pending_step = None
        if self._to_read:  # no backward pass came
            self._read_weights(list(self._to_read.items()))
        parts: list[torch.Tensor] = []
        layout: list[tuple[str, str, int]] = []  # (kind, name, length)

        def add(kind: str, name: str, t: torch.Tensor) -> None:
            parts.append(t.detach().double().reshape(-1))
            layout.append((kind, name, parts[-1].numel()))

        with torch.no_grad():
            for name, t in self._weight_summaries.items():
                add("w", name, t)
            for name, t in self._grad_summaries.items():
                add("g", name, t)
            for call, _, t in self._acts:
                add("a", call, t)
            if with_updates:
                for name, p in self._params:
                    old = self._snapshot.get(name)
                    if old is not None:
                        w = self._old_norm(name, old)
                        dw = torch.linalg.vector_norm(old.sub_(p.detach())).double()
                        add("u", name, dw / w.clamp_min(1e-30))
        act_modules = {call: module for call, module, _ in self._acts}
        if self.every == 1 and with_updates:  # the next iteration snapshots again
            self._spare = self._snapshot
        self._weight_summaries, self._grad_summaries, self._snapshot = {}, {}, {}
        self._scratch = None
        self._acts = []
        if not parts:
            return
        host = torch.cat([p.to(parts[0].device) for p in parts]).cpu().numpy()  # the one sync
        self._log(step, host, layout, act_modules)

    def _old_norm(self, name: str, old: torch.Tensor) -> torch.Tensor:
        """||w|| at the logged step: from its summary when every value was finite (no
        pass over the snapshot), else measured."""
        head = self._weight_summaries.get(name)
        if head is None:
            norm: torch.Tensor = torch.linalg.vector_norm(old)
            return norm.double()
        all_finite = head[0] == old.numel()
        return torch.where(all_finite, head[7].clamp_min(0).sqrt(), math.nan)

    def _log(
        self,
        step: int,
        host: np.ndarray,
        layout: list[tuple[str, str, int]],
        act_modules: dict[str, nn.Module],
    ) -> None:
        stats = StepStats(step=step)
        scalars: dict[str, float] = {}
        overlay: dict[str, dict[str, float]] = {
            "grad_norm": {},
            "update_ratio": {},
            "dead_frac": {},
            "act_std": {},
        }
        offset = 0
        n_sum = summary_size(self.bins)
        shapes = dict(self._params)
        for kind, name, length in layout:
            row = host[offset : offset + length]
            offset += length
            if kind in ("w", "g"):
                hist = decode_summary(row[:n_sum], self.bins)
                norm = _norm(hist)
                if kind == "g" and hist.total > hist.count:
                    self._report_nonfinite("nonfinite_gradient", name, "gradient", step=step)
                prefix = "weights" if kind == "w" else "grads"
                self.run.log_histogram(f"{prefix}/{name}", hist, step=step)
                scalars[f"{'weight' if kind == 'w' else 'grad'}_norm/{name}"] = norm
                if kind == "g" and shapes[name].dim() >= 2:
                    stats.grad_norms[name] = norm
                    _combine_norm(overlay["grad_norm"], owner_namespace(name), norm)
            elif kind == "u":
                ratio = float(row[0])
                scalars[f"update_ratio/{name}"] = ratio
                stats.update_ratios[name] = ratio
                _combine_max(overlay["update_ratio"], owner_namespace(name), ratio)
            else:
                values = dict(zip(ACT_FIELDS, (float(v) for v in row), strict=True))
                if values["nonfinite"]:
                    self._report_nonfinite("nonfinite_activation", name, "output", step=step)
                for field in ("mean", "std", "zero_frac"):
                    scalars[f"act/{name}/{field}"] = values[field]
                module = act_modules[name]
                base = name.split("#")[0]
                overlay["act_std"][module_namespace(base)] = values["std"]
                if isinstance(module, _RELU_LIKE) and values["count"] > 0:
                    stats.dead_frac[name] = values["dead_frac"]
                    overlay["dead_frac"][module_namespace(base)] = values["dead_frac"]
                if type(module) in _SATURATING and values["count"] > 0:
                    stats.sat_frac[name] = values["sat_frac"]
                    scalars[f"act/{name}/sat_frac"] = values["sat_frac"]
        order = {name: i for i, (name, _) in enumerate(self._params)}
        stats.grad_norms = dict(sorted(stats.grad_norms.items(), key=lambda kv: order[kv[0]]))
        if stats.grad_norms:
            scalars["grad_norm/total"] = math.sqrt(sum(v * v for v in stats.grad_norms.values()))
        self.run.log(scalars, step=step)
        self._log_overlay(overlay, step)
        self._emit(self.diagnoser.check(stats))

    def _log_overlay(self, overlay: dict[str, dict[str, float]], step: int) -> None:
        """One ``overlay`` blob per logged step: ``{series: {module namespace: value}}``.

        Keys are module namespaces (`module_namespace` / `owner_namespace`), not node ids:
        the graph is logged separately and may be traced differently, so the server maps
        each namespace to the graph's node ids (`GraphIndex.targets`, `/api/overlays`)."""
        from deepscope.store import jsonenc

        data = {k: v for k, v in overlay.items() if v}
        if data:
            meta = {"series": sorted(data)}  # the overlay index reads this, not the blob
            self.run.log_blob(
                "overlay", "watch", jsonenc.dumps(data).encode(), ext="json", step=step,
                meta=meta,
            )  # fmt: skip

    def observe_scalar(self, tag: str, value: float, step: int) -> None:
        """Called by `Run.log` for every scalar: loss tags feed the spike/divergence rules."""
        if "loss" in tag.lower():
            self._emit(self.diagnoser.observe_loss(tag, value, step))

    def _emit(self, items: list[Diagnosis]) -> None:
        for d in items:
            self.run.log_event(d.kind, d.message, severity=d.severity, layer=d.layer, step=d.step)
