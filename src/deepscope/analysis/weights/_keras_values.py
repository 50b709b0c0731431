"""Tensor values of a Keras file (`.keras` or legacy `.h5`), read through the sandbox worker.

HDF5 is parsed only in the sandboxed child (M8, M10), which answers in JSON: values come
back base64-encoded, at most `_keras_h5.VALUES_BUDGET` (40 MB) of raw bytes per answer. A
`KerasValues` asks for the tensor wanted plus the ones after it in file order, up to
`BATCH_BYTES`, so writing every tensor's pictures (`deepscope weights -o`) costs one worker
per batch, not one per tensor; read arrays are kept in an LRU of `CACHE_BYTES`. A tensor
over the answer budget has statistics (from `load_model`) but no values:
`ModelFormatError` says so.

Example:
    >>> values = KerasValues(Path("m.keras"), legacy=False, shapes={...})   # doctest: +SKIP
    >>> values.get("layers/dense/vars/0").shape
    (64, 10)
"""

from __future__ import annotations

import base64
import binascii
import math
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.errors import ModelFormatError

__all__ = ["BATCH_BYTES", "CACHE_BYTES", "KerasValues", "decode_values"]

BATCH_BYTES = 32 << 20
CACHE_BYTES = 64 << 20


def decode_values(answer: Any, shapes: dict[str, tuple[int, ...]]) -> dict[str, NDArray[Any]]:
    """The arrays of an `h5_values` answer, each checked against the shape `load_model`
    read for it (the child is not trusted to answer what was asked)."""
    out: dict[str, NDArray[Any]] = {}
    items = answer.get("values") if isinstance(answer, dict) else None
    if not isinstance(items, list):
        raise ModelFormatError("the Keras weights worker gave a malformed answer")
    for item in items:
        try:
            name = str(item["name"])
            dtype = np.dtype(str(item["dtype"]))
            shape = tuple(int(d) for d in item["shape"])
            raw = base64.b64decode(str(item["data"]), validate=True)
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise ModelFormatError("the Keras weights worker gave a malformed answer") from None
        if dtype.kind not in "fiub" or dtype.itemsize > 8 or shapes.get(name) != shape:
            raise ModelFormatError(f"the Keras weights worker answered {name!r} wrongly")
        if len(raw) != math.prod(shape) * dtype.itemsize:
            raise ModelFormatError(f"the Keras weights worker answered {name!r} wrongly")
        out[name] = np.frombuffer(raw, dtype=dtype).reshape(shape)
    return out


class KerasValues:
    """Reads tensor values of one Keras file on demand (thread-safe; see the module doc).

    `shapes` and `dtypes` are what `load_model` read for each tensor, in file order."""

    def __init__(
        self, path: Path, *, legacy: bool, shapes: dict[str, tuple[int, ...]],
        dtypes: dict[str, str],
    ) -> None:  # fmt: skip
        self.path = path
        self.legacy = legacy
        self.shapes = shapes
        self.order = list(shapes)
        self._size = {n: _nbytes(shapes[n], dtypes.get(n, "")) for n in self.order}
        self._cache: OrderedDict[str, NDArray[Any]] = OrderedDict()
        self._cached = 0
        self._lock = threading.Lock()
        self.batches = 0  # worker runs so far (tests read it)

    def get(self, name: str) -> NDArray[Any]:
        """The values of tensor `name` (read-only)."""
        from deepscope.sources._keras_h5 import VALUES_BUDGET

        with self._lock:
            hit = self._cache.get(name)
            if hit is not None:
                self._cache.move_to_end(name)
                return hit
            if name not in self._size:
                raise ModelFormatError(f"no tensor named {name!r} in {self.path.name}")
            if self._size[name] > VALUES_BUDGET:
                raise ModelFormatError(
                    f"{name!r} ({self._size[name] / 2**20:.0f} MB) is over the "
                    f"{VALUES_BUDGET >> 20} MB the sandboxed Keras reader returns at once: "
                    "its statistics are shown, its values are not read"
                )
            arrays = self._read(self._batch(name))
            if name not in arrays:
                raise ModelFormatError(f"{name!r} holds no numeric values")
            for n, a in arrays.items():
                self._keep(n, a)
            return arrays[name]

    def _batch(self, name: str) -> list[str]:
        """`name` and the uncached tensors after it, up to `BATCH_BYTES` in all."""
        batch, total = [name], self._size[name]
        for n in self.order[self.order.index(name) + 1 :]:
            size = self._size[n]
            if n in self._cache:
                continue
            if total + size > BATCH_BYTES:
                break
            batch.append(n)
            total += size
        return batch

    def _read(self, names: list[str]) -> dict[str, NDArray[Any]]:
        from deepscope.sources._sandbox import run_task
        from deepscope.sources.keras_file import WEIGHTS_MEMBER

        options = {"names": names, "member": None if self.legacy else WEIGHTS_MEMBER}
        self.batches += 1
        return decode_values(run_task("h5_values", self.path, options), self.shapes)

    def _keep(self, name: str, arr: NDArray[Any]) -> None:
        arr.flags.writeable = False
        self._cache[name] = arr
        self._cached += arr.nbytes
        while self._cached > CACHE_BYTES and len(self._cache) > 1:
            _, old = self._cache.popitem(last=False)
            self._cached -= old.nbytes


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError:
        itemsize = 8
    return math.prod(shape) * itemsize
