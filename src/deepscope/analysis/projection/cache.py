"""The in-memory cache of projections, keyed by (data fingerprint, method, dims, seed,
options): a small LRU bounded by entries and bytes. A run's embeddings are also cached in
the run's blobs (kind ``projection``, by the dashboard's worker), so reopening is instant.

PCA is not cached in memory: fingerprinting the data costs about as much as the
randomised PCA itself.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["ProjectionCache", "fingerprint", "identity"]


def fingerprint(x: NDArray[np.float32]) -> str:
    """SHA-1 of the shape and the C-order float32 bytes of `x` (hex)."""
    h = hashlib.sha1(repr(tuple(x.shape)).encode(), usedforsecurity=False)
    h.update(x.tobytes() if not x.flags.c_contiguous else x.data)
    return h.hexdigest()


def identity(method: str, dims: int, seed: int, params: Mapping[str, Any]) -> str:
    """The canonical text of what determines a result besides the data (thread counts
    excluded)."""
    kept = {k: v for k, v in params.items() if k != "n_jobs"}
    return json.dumps([method, int(dims), int(seed), kept], sort_keys=True)


class ProjectionCache:
    """A thread-safe LRU of values by key, bounded by `max_entries` and `max_bytes`."""

    def __init__(self, max_entries: int = 16, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Any | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: str, value: Any, nbytes: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            if nbytes > self.max_bytes:
                return
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _k, (_v, size) = self._items.popitem(last=False)
                self._bytes -= size

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)
