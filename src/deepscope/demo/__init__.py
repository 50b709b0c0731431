"""`deepscope demo`: train a small CNN on scikit-learn's digits (bundled, no download) and
log every kind of record deepscope shows, plus a second run whose learning rate diverges.

Example:
    >>> from deepscope.demo import run_demo
    >>> runs = run_demo("demo-runs", progress=False)                 # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deepscope.demo.data import Digits, load_digits
from deepscope.demo.train import DigitsCNN, train_diverging, train_healthy


@dataclass(frozen=True)
class DemoResult:
    logdir: Path
    healthy_run: str
    diverging_run: str
    test_accuracy: float


def run_demo(
    logdir: str | Path = "demo-runs", *, progress: bool = True, epochs: int = 8
) -> DemoResult:
    """Write the demo's two runs into `logdir` and return their names and the accuracy."""
    logdir = Path(logdir)
    data = load_digits()
    healthy, acc = train_healthy(logdir, data, epochs=epochs, progress=progress)
    diverging = train_diverging(logdir, data, progress=progress)
    return DemoResult(logdir, healthy, diverging, acc)


__all__ = ["DemoResult", "Digits", "DigitsCNN", "load_digits", "run_demo"]
