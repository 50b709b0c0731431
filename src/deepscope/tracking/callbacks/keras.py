"""Keras 3: a callback that logs metrics and weight histograms into a deepscope run.

Works with any Keras backend; tested with `KERAS_BACKEND=torch`.

Example:
    >>> from deepscope.tracking.callbacks.keras import DeepscopeCallback
    >>> model.fit(x, y, callbacks=[DeepscopeCallback("runs")])          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepscope.errors import require

require("keras", "keras3")

import keras  # noqa: E402

from deepscope.tracking.run import Run, init  # noqa: E402


class DeepscopeCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Logs batch and epoch metrics, and per-epoch histograms of every weight."""

    def __init__(
        self,
        logdir: str = "runs",
        name: str | None = None,
        histograms: bool = True,
        log_every_batches: int = 10,
    ) -> None:
        super().__init__()
        self.logdir, self.name = logdir, name
        self.histograms, self.log_every_batches = histograms, log_every_batches
        self.run: Run | None = None
        self._batch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.run = init(logdir=self.logdir, name=self.name)
        self._batch = 0

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run is not None and logs and self._batch % self.log_every_batches == 0:
            self.run.log({f"batch/{k}": float(v) for k, v in logs.items()}, step=self._batch)
        self._batch += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run is None:
            return
        if logs:
            self.run.log({f"epoch/{k}": float(v) for k, v in logs.items()}, step=epoch)
        if self.histograms and self.model is not None:
            for w in self.model.weights:
                values = np.asarray(keras.ops.convert_to_numpy(w.value))
                self.run.log_histogram(f"weights/{w.path}", values, step=epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
