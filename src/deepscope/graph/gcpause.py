"""Pause Python's cyclic garbage collector around bulk builds of acyclic data.

Parsing or building a 100k-node graph allocates millions of dicts, lists and tuples; each
allocation burst triggers collections that rescan everything alive, which costs more than
the build itself (json.loads of a 36 MB graph: 3.3 s with the collector, 0.9 s without).
These structures hold no reference cycles, so reference counting frees them and pausing
the collector loses nothing. Nested and concurrent pauses are counted: the collector is
restored to its earlier state when the last one ends.

Example:
    >>> with gc_paused():
    ...     data = [[i] for i in range(1000)]
    >>> len(data)
    1000
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["gc_paused"]

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block (re-enabled after the last nested pause)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
