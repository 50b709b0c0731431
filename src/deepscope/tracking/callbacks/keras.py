"""Keras 3: a callback that logs metrics, weight histograms and the model's graph into a
deepscope run.

Works with any Keras backend; tested with `KERAS_BACKEND=torch`. With the torch backend the
model is a live torch module: its graph (Keras layer names as groups) is logged when
training begins, and `watch_every` watches its weights, gradients and activations.

Example:
    >>> from deepscope.tracking.callbacks.keras import DeepscopeCallback
    >>> model.fit(x, y, callbacks=[DeepscopeCallback("runs")])          # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from deepscope.errors import DeepscopeError, require

require("keras", "keras3")

import keras  # noqa: E402

from deepscope.tracking.run import Run, init  # noqa: E402


def example_inputs(model: Any) -> Any:
    """Zeros shaped like `model`'s inputs with a batch of 1 (``None`` if it has none yet):
    a tensor for one input, a ``(list,)`` tuple for several (Keras takes them as one list)."""
    try:
        specs = list(model.inputs)
    except (AttributeError, ValueError):  # a subclassed model that was never called
        return None
    if not specs or any(d is None for s in specs for d in s.shape[1:]):
        return None
    zeros = [keras.ops.zeros((1, *s.shape[1:]), dtype=s.dtype) for s in specs]
    return zeros[0] if len(zeros) == 1 else (zeros,)


def weight_names(model: Any) -> list[tuple[str, Any]]:
    """``(name, variable)`` for every weight of `model` once, named as `Run.watch` and the
    graph name them: ``<layer path>.<variable name>`` (``conv2d.kernel``,
    ``block.dense_1.bias``), on any Keras backend."""
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", model)]
    while stack:
        path, layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        for v in [*layer._trainable_variables, *layer._non_trainable_variables]:
            if id(v) not in seen:
                seen.add(id(v))
                out.append((f"{path}.{v.name}" if path else str(v.name), v))
        kids = [
            (f"{path}.{k.name}" if path else str(k.name), k)
            for k in layer._flatten_layers(include_self=False, recursive=False)
            if type(k).__name__ != "InputLayer"
        ]
        stack.extend(reversed(kids))
    return out


class DeepscopeCallback(keras.callbacks.Callback):  # type: ignore[misc]
    """Logs batch and epoch metrics, per-epoch histograms of every weight, the graph when
    training begins (torch backend, `graph=True`), and with `watch_every` (torch backend)
    watches the model (`Run.watch`) every `watch_every` training batches.

    Weight histograms are tagged ``weights/<layer path>.<variable>`` (``weights/conv2d.kernel``),
    the names `Run.watch` and the graph use; while the model is watched, the watch logs them
    (at batch steps) and the per-epoch ones are not logged."""

    def __init__(
        self,
        logdir: str = "runs",
        name: str | None = None,
        histograms: bool = True,
        log_every_batches: int = 10,
        graph: bool = True,
        watch_every: int | None = None,
    ) -> None:
        super().__init__()
        self.logdir, self.name = logdir, name
        self.histograms, self.log_every_batches = histograms, log_every_batches
        self.graph, self.watch_every = graph, watch_every
        self.run: Run | None = None
        self._batch = 0
        self._watched = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self.run = init(logdir=self.logdir, name=self.name)
        self._batch, self._watched = 0, False
        if self.model is None or keras.backend.backend() != "torch":
            return
        if self.graph:
            self._log_graph()
        if self.watch_every:
            self.run.watch(self.model, every=self.watch_every)
            self._watched = True

    def _log_graph(self) -> None:
        assert self.run is not None
        x = example_inputs(self.model)
        if x is None:
            warnings.warn(
                "deepscope: the Keras model has no fixed input shape yet, so its graph was not "
                "logged; build it with keras.Input(shape) first.",
                RuntimeWarning,
                stacklevel=3,
            )
            return
        try:
            self.run.log_graph(self.model, x)
        except DeepscopeError as exc:  # a graph never stops training
            warnings.warn(f"deepscope: the model's graph was not logged: {exc}", stacklevel=3)

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run is not None and logs and self._batch % self.log_every_batches == 0:
            self.run.log({f"batch/{k}": float(v) for k, v in logs.items()}, step=self._batch)
        self._batch += 1

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.run is None:
            return
        if logs:
            self.run.log({f"epoch/{k}": float(v) for k, v in logs.items()}, step=epoch)
        if self.histograms and self.model is not None and not self._watched:
            for name, w in weight_names(self.model):
                values = np.asarray(keras.ops.convert_to_numpy(w.value))
                self.run.log_histogram(f"weights/{name}", values, step=epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
