"""Hooks that are always removed, layer lookup and bounded reducers."""

from deepscope.capture.hooks import (
    HookSet,
    find_module,
    find_tensor,
    first_tensor,
    forward_from_layer,
)

__all__ = ["HookSet", "find_module", "find_tensor", "first_tensor", "forward_from_layer"]
