"""The one rule that turns a module path into a namespace (stdlib only).

A namespace is the module path with ``/`` between its parts (``layer1/0/conv1``); the root
module is ``""``. Every source, the aggregates and the tracker's overlays name groups with
these two functions, so a node, its parameters and its overlay values land in one group.

Example:
    >>> module_namespace("layer1.0.conv1")
    'layer1/0/conv1'
    >>> owner_namespace("layer1.0.conv1.weight"), owner_namespace("bias")
    ('layer1/0/conv1', '')
"""

from __future__ import annotations

import re

__all__ = ["module_namespace", "owner_namespace"]

_SEP = re.compile(r"[./]")


def _parts(path: str) -> list[str]:
    return [p for p in _SEP.split(path) if p]


def module_namespace(path: str) -> str:
    """The namespace of a module path: ``"layer1.0.conv1"`` → ``"layer1/0/conv1"``.

    Dots and slashes both separate parts (torch names use dots, Keras and TensorFlow names
    slashes); empty parts are dropped, so ``""`` (the root) stays ``""``."""
    return "/".join(_parts(path))


def owner_namespace(name: str) -> str:
    """The namespace of the module that owns a parameter or buffer name: everything but
    the last part (``"layer1.0.conv1.weight"`` → ``"layer1/0/conv1"``, ``"bias"`` → ``""``)."""
    return "/".join(_parts(name)[:-1])
