"""``run.log_weights``: every tensor of a `Weights` result as ``weights`` view items.

Bounded: at most `max_tensors` tensors per call (default `MAX_TENSORS`, the model's order);
the rest are skipped, counted in the returned `LoggedWeights` and named in a warning.
Tensors whose values cannot be read (Keras files keep them in the sandbox worker) and empty
tensors are skipped and counted too.

Example:
    >>> import numpy as np, deepscope
    >>> w = deepscope.weights({"fc.weight": np.eye(3)})
    >>> with deepscope.init(logdir="runs", name="w") as run:  # doctest: +SKIP
    ...     run.log_weights("weights", w, step=0)
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from deepscope.errors import DeepscopeError
from deepscope.views.kinds.weights import MAX_SIDE, tensor_entry
from deepscope.views.registry import BlobWriter, write

__all__ = ["MAX_TENSORS", "LoggedWeights", "log_weights"]

MAX_TENSORS = 256
"""Tensors logged per call by default: a ResNet-50 has ~320, so its first 256 go (each
item is at most a 512x512 float32 heatmap, 1 MiB)."""


@dataclass(frozen=True)
class LoggedWeights:
    """What `log_weights` wrote: tensor names, and how many were skipped (over the bound,
    unreadable, empty)."""

    logged: list[str]
    skipped: int


def log_weights(
    run: BlobWriter,
    tag: str,
    result: Any,
    step: int | None = None,
    *,
    names: list[str] | None = None,
    max_tensors: int = MAX_TENSORS,
    max_side: int = MAX_SIDE,
    spectra: bool = True,
    dtype: Literal["float32", "float16"] = "float32",
) -> LoggedWeights:
    """Log `result` (a `Weights`, from `deepscope.weights`) as ``weights`` items: one per
    tensor in `names` (default: every tensor), at most `max_tensors` of them."""
    tensors = getattr(result, "tensors", None)
    if not isinstance(tensors, dict):
        raise DeepscopeError(
            f"log_weights needs a deepscope.weights(...) result, not a {type(result).__name__}: "
            "call run.log_weights(tag, deepscope.weights(model), step=...)"
        )
    if max_tensors < 1:
        raise DeepscopeError(f"max_tensors must be at least 1, not {max_tensors}")
    chosen = list(tensors) if names is None else list(names)
    unknown = [n for n in chosen if n not in tensors]
    if unknown:
        raise DeepscopeError(f"no tensor named {unknown[0]!r}; tensors include {list(tensors)[:8]}")
    logged: list[str] = []
    skipped = max(0, len(chosen) - max_tensors)
    if skipped:
        warnings.warn(
            f"log_weights: logging the first {max_tensors} of {len(chosen)} tensors; pass "
            "max_tensors= (or names=) to log more",
            stacklevel=3,
        )
    for name in chosen[:max_tensors]:
        ref = tensors[name]
        if ref.getter is None or 0 in tuple(ref.shape):
            skipped += 1
            continue
        entry = tensor_entry(result, name, max_side=max_side, spectra=spectra, heat_dtype=dtype)
        doc = json.dumps(entry.doc, allow_nan=False).encode()
        write(run, "weights", tag, doc, ext="json", meta=entry.meta, parts=entry.arrays,
              step=step)  # fmt: skip
        logged.append(name)
    return LoggedWeights(logged, skipped)
