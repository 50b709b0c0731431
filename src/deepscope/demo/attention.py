"""The demo's attention: the tiny transformer of `deepscope.demo.transformer`, trained to
reverse 8 letters, logged into a run before and after training, so the Attention tab shows
a head that learned the anti-diagonal (output i reads input 7-i) beside its untrained
self."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deepscope.tracking.run import Run

CHECKPOINTS = (0, 150)
"""Adam steps at which the transformer's attention is logged (training is deterministic,
so each checkpoint is the same run stopped earlier)."""


def log_transformer_attention(run: Run, tag: str = "attention/reverse") -> float:
    """Train the demo transformer to each of `CHECKPOINTS` and log its attention on one
    held-out sequence at that step (plus the pattern accuracy of its best head as the
    scalar ``transformer/reverse_accuracy``); return the final accuracy."""
    import deepscope
    from deepscope.demo.transformer import best_head, train_transformer

    accuracy = 0.0
    for steps in CHECKPOINTS:
        model, ids, letters = train_transformer(steps=steps)
        att = deepscope.attention(model, ids, tokens=letters)
        accuracy = best_head(att)[2]
        run.log_attention(tag, att, step=steps)
        run.log({"transformer/reverse_accuracy": accuracy}, step=steps)
    run.log_text(
        "demo/attention",
        "A one-layer, two-head transformer trained to reverse 8 letters "
        f"({CHECKPOINTS[-1]} Adam steps): one head attends from output i to input 7-i.",
        step=CHECKPOINTS[-1],
    )
    return accuracy
