"""An LRU of parsed graphs: wire dict, level index and JSON text built once per key.

A logged graph is kept as its parsed wire dict (`json.loads` of the blob), which the level
index reads directly; the IR dataclasses are built only if the whole graph is asked for
(``/api/graph``). Each key loads once even when requests race (a per-entry lock), and a
failed load is dropped so the next request tries again.

After indexing a big graph (`FREEZE_NODES` nodes or more) the server calls `gc.freeze()`:
the millions of long-lived dicts and lists of the graph then never get rescanned by the
cyclic collector, whose full passes otherwise stall a level request for half a second.
They are acyclic, so reference counting still frees them when the entry is dropped.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from deepscope.graph.ir import Graph
from deepscope.graph.serialize import from_dict, to_json
from deepscope.server.graph_index import GraphIndex

__all__ = ["FREEZE_NODES", "CachedGraph", "GraphCache"]

FREEZE_NODES = 20_000

Loaded = Graph | dict[str, Any]


class CachedGraph:
    """One graph (a `Graph` or its wire dict, from `load()` on first use) with its wire JSON
    and hierarchy index, each built on first use."""

    def __init__(self, load: Callable[[], Loaded]) -> None:
        self._load: Callable[[], Loaded] | None = load
        self._source: Loaded | None = None
        self._graph: Graph | None = None
        self._json: str | None = None
        self._index: GraphIndex | None = None
        self._lock = threading.RLock()

    def source(self) -> Loaded:
        """The loaded graph or wire dict (loads it on the first call)."""
        with self._lock:
            if self._source is None:
                assert self._load is not None
                self._source = self._load()
                self._load = None
            return self._source

    @property
    def graph(self) -> Graph:
        """The Graph IR (built from the wire dict on first use)."""
        with self._lock:
            if self._graph is None:
                source = self.source()
                self._graph = source if isinstance(source, Graph) else from_dict(source)
            return self._graph

    def json(self) -> str:
        with self._lock:
            if self._json is None:
                self._json = to_json(self.graph)
            return self._json

    def index(self) -> GraphIndex:
        with self._lock:
            if self._index is None:
                self._index = GraphIndex(self.source())
                if len(self._index.nodes) >= FREEZE_NODES:
                    gc.freeze()
            return self._index


class GraphCache:
    """At most `size` graphs, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._items: OrderedDict[Any, CachedGraph] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any, load: Callable[[], Loaded]) -> CachedGraph:
        """The cached graph for `key`, loading it with `load()` on a miss (once, even when
        several requests miss at the same time). `load` may return a `Graph` or a wire
        dict; an exception from it propagates and leaves nothing cached."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                item = CachedGraph(load)
                self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        try:
            item.source()
        except BaseException:
            with self._lock:
                if self._items.get(key) is item:
                    del self._items[key]
            raise
        return item
