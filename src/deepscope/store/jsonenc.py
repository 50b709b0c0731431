"""Strict JSON for everything the store writes and the server serves.

The codec itself lives in `deepscope._jsonstrict` (standard library only), so that
`deepscope.graph.serialize` writes the very same ``{"nonfinite": ...}`` markers without
importing the store. This module is its public name on the store side.
"""

from __future__ import annotations

from deepscope._jsonstrict import (
    NONFINITE_KEY,
    camel,
    decode,
    dumps,
    encode,
    float_class,
    loads,
    snake_to_camel,
)

__all__ = [
    "NONFINITE_KEY",
    "camel",
    "decode",
    "dumps",
    "encode",
    "float_class",
    "loads",
    "snake_to_camel",
]
