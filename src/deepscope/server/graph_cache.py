"""An LRU of parsed graphs: JSON text and level index built once per (run, blob) key."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from deepscope.graph.ir import Graph
from deepscope.graph.serialize import to_json
from deepscope.server.graph_index import GraphIndex

__all__ = ["CachedGraph", "GraphCache"]


class CachedGraph:
    """One graph with its wire JSON and hierarchy index, each built on first use."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._json: str | None = None
        self._index: GraphIndex | None = None
        self._lock = threading.Lock()

    def json(self) -> str:
        with self._lock:
            if self._json is None:
                self._json = to_json(self.graph)
            return self._json

    def index(self) -> GraphIndex:
        with self._lock:
            if self._index is None:
                self._index = GraphIndex(self.graph)
            return self._index


class GraphCache:
    """At most `size` graphs, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: OrderedDict[Any, CachedGraph] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Graph]) -> CachedGraph:
        """The cached graph for `key`, loading it with `load()` on a miss."""
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
                return item
        item = CachedGraph(load())
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return item
