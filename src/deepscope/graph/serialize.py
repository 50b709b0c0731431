"""Graph IR <-> strict JSON. camelCase keys on the wire, snake_case in Python.

The document carries a top-level ``schemaVersion``; `from_dict` refuses a newer version
than this deepscope knows. Non-finite floats (in overlays, attrs or meta) never become the
``NaN``/``Infinity`` literals: they travel as ``{"nonfinite": "nan" | "+inf" | "-inf"}``, by
the one strict-JSON codec (`deepscope._jsonstrict`, also behind `deepscope.store.jsonenc`).

Example:
    >>> from deepscope.graph.ir import Graph, Node
    >>> g = Graph(nodes=[Node(id="n0", op="relu")])
    >>> from_json(to_json(g)).nodes[0].op
    'relu'
"""

from __future__ import annotations

import json
from typing import Any

from deepscope._jsonstrict import decode as _dec
from deepscope._jsonstrict import encode as _enc
from deepscope._jsonstrict import encode_float as _enc_float
from deepscope.errors import ModelFormatError
from deepscope.graph.gcpause import gc_paused
from deepscope.graph.ir import (
    SCHEMA_VERSION,
    Edge,
    Graph,
    GroupStats,
    Node,
    ParamRef,
    Shape,
    TensorMeta,
)

__all__ = [
    "check_version",
    "decode_value",
    "from_dict",
    "from_json",
    "loads",
    "overlay_value",
    "to_dict",
    "to_json",
]


def _shape(shape: Shape | None) -> list[int | None] | None:
    return None if shape is None else list(shape)


def _tensor(t: TensorMeta | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"shape": None if t.shape is None else list(t.shape), "dtype": t.dtype}


class _Tensors:
    """Wire dicts of TensorMeta objects, one per distinct object (graphs reuse them a lot).

    Keyed by ``id``: every TensorMeta stays alive in the graph while this memo exists."""

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: dict[int, dict[str, Any]] = {}

    def __call__(self, t: TensorMeta | None) -> dict[str, Any] | None:
        if t is None:
            return None
        key = id(t)
        d = self._memo.get(key)
        if d is None:
            d = self._memo[key] = {"shape": _shape(t.shape), "dtype": t.dtype}
        return d


def _param(p: ParamRef) -> dict[str, Any]:
    return {"name": p.name, "shape": list(p.shape), "dtype": p.dtype, "trainable": p.trainable}


def _group(g: GroupStats) -> dict[str, Any]:
    return {
        "namespace": g.namespace,
        "moduleType": g.module_type,
        "params": g.params,
        "trainableParams": g.trainable_params,
        "frozenParams": g.frozen_params,
        "macs": g.macs,
        "opCount": g.op_count,
        "outputShapes": [_shape(s) for s in g.output_shapes],
    }


def _wire(graph: Graph, share: bool) -> dict[str, Any]:
    """The wire dict; with `share`, equal TensorMeta objects map to one shared dict."""
    tensor = _Tensors() if share else _tensor
    nodes = [
        {
            "id": n.id,
            "op": n.op,
            "label": n.label,
            "namespace": n.namespace,
            "attrs": _enc(n.attrs) if n.attrs else {},
            "inputs": [tensor(t) for t in n.inputs],
            "outputs": [tensor(t) for t in n.outputs],
            "params": [_param(p) for p in n.params] if n.params else [],
            "macs": n.macs,
        }
        for n in graph.nodes
    ]
    edges = [
        {
            "src": e.src,
            "dst": e.dst,
            "srcOutput": e.src_output,
            "dstInput": e.dst_input,
            "tensor": tensor(e.tensor),
        }
        for e in graph.edges
    ]
    return {
        "schemaVersion": SCHEMA_VERSION,
        "nodes": nodes,
        "edges": edges,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "groups": {ns: _group(g) for ns, g in graph.groups.items()},
        "overlays": {
            name: {nid: (None if v is None else _enc_float(float(v))) for nid, v in vals.items()}
            for name, vals in graph.overlays.items()
        },
        "meta": _enc(graph.meta),
    }


def to_dict(graph: Graph) -> dict[str, Any]:
    """The wire form of `graph`: a dict of JSON values only (strict, camelCase)."""
    with gc_paused():
        return _wire(graph, share=False)


def to_json(graph: Graph, *, indent: int | None = None) -> str:
    """Strict JSON text of `graph` (never a ``NaN`` literal)."""
    separators = (",", ":") if indent is None else None
    with gc_paused():
        return json.dumps(
            _wire(graph, share=True),
            indent=indent,
            separators=separators,
            allow_nan=False,
            check_circular=False,
        )


def check_version(data: Any) -> int:
    """The ``schemaVersion`` of a wire document; `ModelFormatError` if absent or too new."""
    if not isinstance(data, dict):
        raise ModelFormatError("graph JSON must be an object with a 'schemaVersion' key")
    version = data.get("schemaVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFormatError(
            "graph JSON has no integer 'schemaVersion': it was not written by deepscope"
        )
    if version > SCHEMA_VERSION:
        raise ModelFormatError(
            f"graph JSON has schemaVersion {version}, newer than this deepscope reads "
            f"({SCHEMA_VERSION}): upgrade deepscope (pip install -U deepscope)"
        )
    return version


def _shape_in(raw: Any) -> Shape | None:
    if raw is None:
        return None
    return tuple(None if d is None else int(d) for d in raw)


class _TensorsIn:
    """TensorMeta from wire dicts; equal ones share one (frozen) object."""

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: dict[tuple[Any, Any], TensorMeta] = {}

    def __call__(self, raw: Any) -> TensorMeta | None:
        if raw is None:
            return None
        shape = raw.get("shape")
        dtype = raw.get("dtype")
        key = (None if shape is None else tuple(shape), dtype)
        t = self._memo.get(key)
        if t is None:
            t = TensorMeta(shape=_shape_in(shape), dtype=dtype)
            self._memo[key] = t
        return t


def _param_in(raw: dict[str, Any]) -> ParamRef:
    return ParamRef(
        name=str(raw["name"]),
        shape=tuple(int(d) for d in raw["shape"]),
        dtype=str(raw["dtype"]),
        trainable=bool(raw.get("trainable", True)),
    )


def _group_in(ns: str, raw: dict[str, Any]) -> GroupStats:
    return GroupStats(
        namespace=str(raw.get("namespace", ns)),
        module_type=str(raw.get("moduleType", "")),
        params=int(raw.get("params", 0)),
        trainable_params=int(raw.get("trainableParams", 0)),
        frozen_params=int(raw.get("frozenParams", 0)),
        macs=int(raw.get("macs", 0)),
        op_count=int(raw.get("opCount", 0)),
        output_shapes=[_shape_in(s) for s in raw.get("outputShapes", [])],
    )


def overlay_value(v: Any) -> float | None:
    """One overlay value from the wire: a number, ``None`` or a ``nonfinite`` marker."""
    v = _dec(v)
    return None if v is None else float(v)


def decode_value(value: Any) -> Any:
    """A wire JSON value with every ``{"nonfinite": ...}`` marker turned back into a float."""
    return _dec(value)


def _build(data: dict[str, Any]) -> Graph:
    tensor = _TensorsIn()
    empty = TensorMeta()
    nodes = []
    for raw in data.get("nodes", []):
        attrs = raw.get("attrs")
        params = raw.get("params")
        nodes.append(
            Node(
                id=str(raw["id"]),
                op=str(raw["op"]),
                label=str(raw.get("label", "")),
                namespace=str(raw.get("namespace", "")),
                attrs=_dec(attrs) if attrs else {},
                inputs=[tensor(t) or empty for t in raw.get("inputs", [])],
                outputs=[tensor(t) or empty for t in raw.get("outputs", [])],
                params=[_param_in(p) for p in params] if params else [],
                macs=int(raw.get("macs", 0)),
            )
        )
    edges = [
        Edge(
            src=str(raw["src"]),
            dst=str(raw["dst"]),
            src_output=int(raw.get("srcOutput", 0)),
            dst_input=int(raw.get("dstInput", 0)),
            tensor=tensor(raw.get("tensor")),
        )
        for raw in data.get("edges", [])
    ]
    return Graph(
        nodes=nodes,
        edges=edges,
        inputs=[str(i) for i in data.get("inputs", [])],
        outputs=[str(o) for o in data.get("outputs", [])],
        groups={str(ns): _group_in(ns, g) for ns, g in data.get("groups", {}).items()},
        overlays={
            str(name): {str(k): overlay_value(v) for k, v in vals.items()}
            for name, vals in data.get("overlays", {}).items()
        },
        meta=_dec(data.get("meta") or {}),
    )


def from_dict(data: Any) -> Graph:
    """Read the wire form back. Raises `ModelFormatError` for a newer schema or bad data."""
    check_version(data)
    try:
        with gc_paused():
            return _build(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFormatError(f"graph JSON is malformed ({type(exc).__name__}: {exc})") from exc


def loads(text: str | bytes) -> Any:
    """`json.loads` of a graph document (collector paused); `ModelFormatError` if it does not
    parse. The result is the raw wire dict: check it with `check_version`."""
    try:
        with gc_paused():
            return json.loads(text)
    except ValueError as exc:
        raise ModelFormatError(f"graph JSON does not parse: {exc}") from exc


def from_json(text: str | bytes) -> Graph:
    """Parse graph JSON written by `to_json`."""
    with gc_paused():
        return from_dict(loads(text))
