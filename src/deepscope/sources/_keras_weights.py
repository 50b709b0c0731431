"""Put the weights read from a Keras file onto the graph's layers (parameter counts, M10).

The weights a file holds are the truth: each layer's parameters become the datasets stored
for it (names, shapes, dtypes), and the shapes inferred from the config only say which are
trainable. `.keras` files store a layer's weights under its storage path
(`layers/conv2d_3/vars/0`, `_keras_config.KerasConfigParser.storage`); legacy `.h5` files
under `<layer name>/<weight path>`. Datasets that match no layer still count, at the root;
optimizer state never does.

Example:
    >>> attach(graph, storage, datasets, legacy=False)   # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any

from deepscope.graph.ir import Graph, Node, ParamRef

_VAR = re.compile(r"^vars/(\d+)$")


def _counted(name: str, legacy: bool) -> bool:
    """Model weights, not optimizer state or other saved objects."""
    return legacy or name.startswith(("layers/", "vars/"))


def _owner_keras(name: str, storage_to_node: dict[str, str]) -> tuple[str | None, str]:
    """(node id, rest of the name) of a `.keras` weights path; the longest storage prefix."""
    parts = name.split("/")
    for cut in range(len(parts) - 1, 0, -1):
        nid = storage_to_node.get("/".join(parts[:cut]))
        if nid is not None:
            return nid, "/".join(parts[cut:])
    return None, name


def _owner_legacy(name: str, ids: set[str], prefixes: set[str]) -> tuple[str | None, str]:
    """(node id, rest) of a legacy `.h5` name `<top layer>/<weight path with layer names>`."""
    parts = name.split("/")
    owner = parts[0]
    if owner in ids:
        return owner, "/".join(parts[1:])
    if owner not in prefixes:
        return None, name
    for i, seg in enumerate(parts[1:-1], start=1):
        deeper = f"{owner}/{seg}"
        if deeper in ids:
            return deeper, "/".join(parts[i + 1 :])
        if deeper in prefixes:
            owner = deeper
    return None, name


def _order(rest: str) -> tuple[int, int, str]:
    m = _VAR.match(rest)
    return (0, int(m.group(1)), "") if m else (1, 0, rest)


def _base(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(":")[0]


def _params(node: Node, found: list[tuple[str, str, dict[str, Any]]]) -> list[ParamRef]:
    """The node's datasets as ParamRefs, trainable flags taken from the inferred weights."""
    found.sort(key=lambda f: _order(f[1]))
    inferred = node.params
    by_base = {_base(p.name): p.trainable for p in inferred}
    frozen_layer = bool(inferred) and not any(p.trainable for p in inferred)
    out: list[ParamRef] = []
    for i, (name, rest, d) in enumerate(found):
        if len(found) == len(inferred) and _VAR.match(rest):
            trainable = inferred[i].trainable
        elif _base(rest) in by_base:
            trainable = by_base[_base(rest)]
        else:
            trainable = not frozen_layer and not _base(rest).startswith("moving_")
        out.append(ParamRef(name, tuple(int(x) for x in d["shape"]), str(d["dtype"]), trainable))
    return out


def attach(
    graph: Graph, storage: dict[str, str], datasets: list[dict[str, Any]], *, legacy: bool
) -> None:
    """Make the file's datasets the parameters: each layer gets those stored for it, and
    datasets that match no layer count at the root (`meta["unusedParams"]`). A layer with no
    stored weights keeps its inferred ones unless some datasets matched no layer (they may
    be its own, under a name this reader does not know: never count them twice).
    """
    storage_to_node = {path: nid for nid, path in storage.items()}
    ids = {n.id for n in graph.nodes}
    prefixes = {"/".join(i.split("/")[:k]) for i in ids for k in range(1, i.count("/") + 1)}
    per_node: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    loose: list[dict[str, Any]] = []
    for d in datasets:
        name = str(d["name"])
        if not _counted(name, legacy):
            continue
        nid, rest = (
            _owner_legacy(name, ids, prefixes) if legacy else _owner_keras(name, storage_to_node)
        )
        if nid is None:
            loose.append(d)
        else:
            per_node.setdefault(nid, []).append((name, rest, d))
    for node in graph.nodes:
        if node.id in per_node:
            node.params = _params(node, per_node[node.id])
        elif loose:
            node.params = []  # its weights may be among the unmatched ones: never count twice
    if loose:
        graph.meta["unusedParams"] = [
            {
                "name": str(d["name"]),
                "shape": list(d["shape"]),
                "dtype": str(d["dtype"]),
                "trainable": True,
            }
            for d in loose
        ]
