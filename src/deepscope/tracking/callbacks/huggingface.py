"""Hugging Face `transformers.Trainer`: a callback that logs into a deepscope run.

Example:
    >>> from deepscope.tracking.callbacks.huggingface import DeepscopeCallback
    >>> trainer = Trainer(model, args, callbacks=[DeepscopeCallback("runs", watch_every=50)])  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from deepscope.errors import require

require("transformers", "huggingface")

from transformers import TrainerCallback  # noqa: E402

from deepscope.tracking.run import Run, init  # noqa: E402


class DeepscopeCallback(TrainerCallback):  # type: ignore[misc]
    """Logs the Trainer's logs (loss, learning rate, eval metrics) at `global_step`;
    with `watch_every`, watches the model's weights, gradients and activations at every
    `watch_every`-th global step (the step the Trainer logs that batch's loss at)."""

    def __init__(
        self, logdir: str = "runs", name: str | None = None, watch_every: int | None = None
    ) -> None:
        self.logdir, self.name, self.watch_every = logdir, name, watch_every
        self.run: Run | None = None

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
    ) -> None:
        if not state.is_world_process_zero:
            return
        config = {k: v for k, v in args.to_dict().items() if isinstance(v, (int, float, str, bool))}
        self.run = init(logdir=self.logdir, name=self.name, config=config)
        if self.watch_every and model is not None:
            # The batch being run becomes optimizer step `global_step + 1`, the step at which
            # the Trainer logs its loss: histograms of that batch carry the same step.
            self.run.watch(model, every=self.watch_every, clock=lambda: state.global_step + 1)

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        if self.run is None or not logs:
            return
        numbers = {
            k: v for k, v in logs.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if numbers:
            self.run.log(numbers, step=state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
