"""The one rule that turns a module path into a namespace (stdlib only).

A namespace is the module path with ``/`` between its parts (``layer1/0/conv1``); the root
module is ``""``. Every source, the aggregates and the tracker's overlays name groups with
`module_namespace` and `owner_namespace`, so a node, its parameters and its overlay values
land in one group; `prefixes` lists the groups a namespace nests in and `group_id` names a
group's node, for the aggregates, `collapse` and the server's graph levels alike.

Example:
    >>> module_namespace("layer1.0.conv1")
    'layer1/0/conv1'
    >>> owner_namespace("layer1.0.conv1.weight"), owner_namespace("bias")
    ('layer1/0/conv1', '')
"""

from __future__ import annotations

import re

__all__ = ["group_id", "module_namespace", "owner_namespace", "prefixes"]

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


def prefixes(namespace: str) -> list[str]:
    """Every group a node with this namespace belongs to, outermost first.

    >>> prefixes("layer1/0/conv1")
    ['', 'layer1', 'layer1/0', 'layer1/0/conv1']
    """
    if not namespace:
        return [""]
    parts = namespace.split("/")
    return [""] + ["/".join(parts[: i + 1]) for i in range(len(parts))]


def group_id(namespace: str) -> str:
    """The id of the group node of `namespace` (``ns:<namespace>``)."""
    return f"ns:{namespace}"
