"""The diagnosis rules. Pure Python over small per-step statistics (no torch).

Each rule looks at one logged step (and a short history of its own) and returns
`Diagnosis` items. Warnings need the condition on two logged steps in a row, so one noisy
batch does not raise an alarm; non-finite values and explosions fire at once.

| kind | fires when |
|---|---|
| exploding_gradients | total grad norm > 20x its median so far (3+ steps), or > 1e4 |
| vanishing_gradients | an early layer's grad norm < 1e-3 x the last layer's |
| dead_units | >= 50% of a ReLU-like layer's units are zero for every input in the batch |
| saturated_units | >= 90% of a tanh/sigmoid layer's outputs are saturated |
| update_ratio_high / _low | ||dw||/||w|| of a weight matrix > 0.1 / < 1e-6 (healthy ~1e-3) |
| loss_spike | loss > 3x its recent median and > median + 20 MAD |
| divergence | loss non-finite, or > 3x its first value for 3 steps in a row |
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class Diagnosis:
    kind: str
    severity: Severity
    layer: str | None
    message: str
    step: int


@dataclass
class StepStats:
    """What the watcher measured at one logged step. Dicts keep forward/definition order."""

    step: int
    grad_norms: dict[str, float] = field(default_factory=dict)  # weight params (ndim >= 2)
    update_ratios: dict[str, float] = field(default_factory=dict)
    dead_frac: dict[str, float] = field(default_factory=dict)  # ReLU-like modules
    sat_frac: dict[str, float] = field(default_factory=dict)  # tanh/sigmoid modules


def _fmt(x: float) -> str:
    return f"{x:.3g}"


class Diagnoser:
    """Keeps a short history and turns `StepStats` and losses into `Diagnosis` items."""

    def __init__(self) -> None:
        self._total_norms: deque[float] = deque(maxlen=50)
        self._pending: dict[tuple[str, str], int] = defaultdict(int)
        self._losses: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=50))
        self._first_loss: dict[str, float] = {}
        self._high_loss_run: dict[str, int] = defaultdict(int)
        self._reported: set[tuple[str, str]] = set()

    def _persistent(self, kind: str, layer: str, now: bool) -> bool:
        """True the second logged step in a row that `now` holds for (kind, layer)."""
        key = (kind, layer)
        self._pending[key] = self._pending[key] + 1 if now else 0
        return self._pending[key] >= 2

    def _once(self, kind: str, layer: str) -> bool:
        """Report each (kind, layer) once, so a persistent problem is not repeated forever."""
        key = (kind, layer)
        if key in self._reported:
            return False
        self._reported.add(key)
        return True

    def check(self, s: StepStats) -> list[Diagnosis]:
        out: list[Diagnosis] = []
        out += self._gradients(s)
        out += self._units(s)
        out += self._updates(s)
        return out

    def _gradients(self, s: StepStats) -> list[Diagnosis]:
        out: list[Diagnosis] = []
        norms = {k: v for k, v in s.grad_norms.items() if math.isfinite(v)}
        if not norms:
            return out
        total = math.sqrt(sum(v * v for v in norms.values()))
        history = list(self._total_norms)
        self._total_norms.append(total)
        median = statistics.median(history) if len(history) >= 3 else None
        if (median and total > 20 * median) or total > 1e4:
            top = max(norms, key=lambda k: norms[k])
            base = f" ({_fmt(total / median)}x its median {_fmt(median)})" if median else ""
            out.append(
                Diagnosis(
                    "exploding_gradients",
                    "error",
                    top,
                    f"gradient norm {_fmt(total)}{base}, largest in '{top}'. Try a lower "
                    "learning rate, gradient clipping (torch.nn.utils.clip_grad_norm_) or "
                    "normalisation layers.",
                    s.step,
                )
            )
        names = list(norms)
        if len(names) >= 3:
            last = norms[names[-1]]
            early = [n for n in names[: len(names) // 2] if last > 0 and norms[n] < 1e-3 * last]
            vanishing = bool(early)
            if self._persistent("vanishing_gradients", "", vanishing) and self._once(
                "vanishing_gradients", ""
            ):
                ratio = min(norms[n] for n in early) / last
                out.append(
                    Diagnosis(
                        "vanishing_gradients",
                        "warning",
                        early[0],
                        f"gradients vanish towards the input: {', '.join(early[:4])} get "
                        f"{_fmt(ratio)}x the gradient norm of '{names[-1]}'. Try ReLU-like "
                        "activations instead of sigmoid/tanh, residual connections, "
                        "normalisation layers or a better initialisation.",
                        s.step,
                    )
                )
        return out

    def _units(self, s: StepStats) -> list[Diagnosis]:
        out: list[Diagnosis] = []
        for layer, frac in s.dead_frac.items():
            if self._persistent("dead_units", layer, frac >= 0.5) and self._once(
                "dead_units", layer
            ):
                out.append(
                    Diagnosis(
                        "dead_units",
                        "warning",
                        layer,
                        f"{frac:.0%} of the units of '{layer}' output zero for every input in "
                        "the batch (dead ReLUs). Try a lower learning rate, LeakyReLU/GELU, "
                        "or check the biases and initialisation of the layer before it.",
                        s.step,
                    )
                )
        for layer, frac in s.sat_frac.items():
            if self._persistent("saturated_units", layer, frac >= 0.9) and self._once(
                "saturated_units", layer
            ):
                out.append(
                    Diagnosis(
                        "saturated_units",
                        "warning",
                        layer,
                        f"{frac:.0%} of the outputs of '{layer}' are saturated, so little "
                        "gradient flows through it. Try normalising its inputs, a smaller "
                        "initialisation, or a non-saturating activation.",
                        s.step,
                    )
                )
        return out

    def _updates(self, s: StepStats) -> list[Diagnosis]:
        out: list[Diagnosis] = []
        for name, r in s.update_ratios.items():
            if not math.isfinite(r):
                continue
            if self._persistent("update_ratio_high", name, r > 0.1) and self._once(
                "update_ratio_high", name
            ):
                out.append(
                    Diagnosis(
                        "update_ratio_high",
                        "warning",
                        name,
                        f"each step changes '{name}' by {_fmt(r)} of its norm (healthy is "
                        "about 1e-3). The learning rate is probably too high.",
                        s.step,
                    )
                )
            low = 0 < r < 1e-6 or (r == 0 and s.grad_norms.get(name, 0.0) > 0)
            if self._persistent("update_ratio_low", name, low) and self._once(
                "update_ratio_low", name
            ):
                out.append(
                    Diagnosis(
                        "update_ratio_low",
                        "info",
                        name,
                        f"each step changes '{name}' by only {_fmt(r)} of its norm (healthy "
                        "is about 1e-3): it is barely learning. Is it frozen by mistake, or "
                        "is the learning rate too low?",
                        s.step,
                    )
                )
        return out

    def observe_loss(self, tag: str, value: float, step: int) -> list[Diagnosis]:
        """Loss spikes and divergence from the values the user logs under a 'loss' tag."""
        if not math.isfinite(value):
            if self._once("divergence", tag):
                return [
                    Diagnosis(
                        "divergence",
                        "error",
                        None,
                        f"'{tag}' is {value} at step {step}. Look for the nonfinite event "
                        "naming the first layer that produced NaN/Inf; try a lower learning "
                        "rate or gradient clipping.",
                        step,
                    )
                ]
            return []
        out: list[Diagnosis] = []
        history = self._losses[tag]
        first = self._first_loss.setdefault(tag, value)
        if len(history) >= 10:
            med = statistics.median(history)
            mad = statistics.median(abs(v - med) for v in history)
            if value > 3 * med and value > med + 20 * mad and med > 0:
                out.append(
                    Diagnosis(
                        "loss_spike",
                        "warning",
                        None,
                        f"'{tag}' jumped to {_fmt(value)} at step {step} (recent median "
                        f"{_fmt(med)}). Check that batch, or lower the learning rate.",
                        step,
                    )
                )
        high = first > 0 and value > 3 * first
        self._high_loss_run[tag] = self._high_loss_run[tag] + 1 if high else 0
        if self._high_loss_run[tag] >= 3 and self._once("divergence", tag):
            out.append(
                Diagnosis(
                    "divergence",
                    "error",
                    None,
                    f"'{tag}' has stayed above 3x its first value ({_fmt(first)}) and is "
                    f"{_fmt(value)} at step {step}: training diverges. Lower the learning rate.",
                    step,
                )
            )
        history.append(value)
        return out
