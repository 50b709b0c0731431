"""Checks that turn malformed ONNX fields into `ModelFormatError` with the reason (M12).

protobuf hands back `bytes` instead of `str` for a string field that is not UTF-8, and
accepts any integer as a dtype or a dimension; these checks run before anything uses them.

Example:
    >>> check_text(model)                                  # doctest: +SKIP
    >>> spec = check_initializer(model.graph.initializer[0])  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepscope.errors import ModelFormatError

__all__ = ["InitSpec", "check_initializer", "check_text", "to_array"]

#: Largest tensor (bytes) an initializer may declare: 1 PiB, past any real model.
MAX_TENSOR_BYTES = 1 << 50
_SUB_BYTE_BITS = {"UINT4": 4, "INT4": 4, "FLOAT4E2M1": 4, "UINT2": 2, "INT2": 2}
_MAX_DEPTH = 64


def _text(value: Any, what: str) -> str:
    if isinstance(value, bytes):
        raise ModelFormatError(
            f"ONNX {what} is not valid UTF-8 ({value[:40]!r}); the file is corrupt or not ONNX"
        )
    return str(value)


def _graphs(node: Any) -> Iterable[Any]:
    from onnx import AttributeProto

    for a in node.attribute:
        if a.type == AttributeProto.GRAPH:
            yield a.g
        elif a.type == AttributeProto.GRAPHS:
            yield from a.graphs


def check_text(model: Any) -> None:
    """Raise `ModelFormatError` for any name deepscope reads that is not valid UTF-8."""
    _text(model.producer_name, "producer name")
    _text(model.producer_version, "producer version")
    for op in model.opset_import:
        _text(op.domain, "opset domain")
    stack: list[tuple[Any, int]] = [(model.graph, 0)]
    while stack:
        g, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ModelFormatError(f"ONNX subgraphs nest deeper than {_MAX_DEPTH} levels")
        for vi in (*g.input, *g.output, *g.value_info):
            _text(vi.name, "value name")
        for t in g.initializer:
            _text(t.name, "initializer name")
            for e in t.external_data:
                _text(e.key, f"external-data key of {t.name!r}")
                _text(e.value, f"external-data value of {t.name!r}")
        for i, n in enumerate(g.node):
            where = f"node {i}"
            _text(n.name, f"{where} name")
            _text(n.op_type, f"{where} op type")
            _text(n.domain, f"{where} domain")
            for name in (*n.input, *n.output):
                _text(name, f"{where} input/output name")
            for a in n.attribute:
                _text(a.name, f"{where} attribute name")
            stack.extend((sub, depth + 1) for sub in _graphs(n))


@dataclass(frozen=True)
class InitSpec:
    """A validated initializer's shape, numpy dtype and stored size."""

    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    numel: int
    nbytes: int  # smallest byte count that can hold it (sub-byte types packed)


def check_initializer(t: Any) -> InitSpec:
    """Validate an initializer's dtype and dims; raise `ModelFormatError` naming the fault."""
    from onnx import TensorProto, helper

    name = t.name
    try:
        dtype_name = TensorProto.DataType.Name(t.data_type)
        dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
    except (KeyError, ValueError, TypeError):
        raise ModelFormatError(
            f"initializer {name!r} has data type {t.data_type}, which ONNX does not define"
        ) from None
    shape = tuple(int(d) for d in t.dims)
    if any(d < 0 for d in shape):
        raise ModelFormatError(f"initializer {name!r} has a negative dimension in {list(shape)}")
    if any(d > MAX_TENSOR_BYTES for d in shape):
        raise ModelFormatError(
            f"initializer {name!r} has a dimension over 2**50 in {list(shape)[:8]}"
        )
    numel = math.prod(shape)
    bits = _SUB_BYTE_BITS.get(dtype_name, 6 if dtype_name.startswith("FLOAT6") else 0)
    nbytes = (numel * bits + 7) // 8 if bits else numel * dtype.itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise ModelFormatError(
            f"initializer {name!r} declares shape {list(shape)[:8]}: {nbytes:.3g} bytes, "
            "more than any real model holds"
        )
    if t.data_location == TensorProto.EXTERNAL and dtype_name == "STRING":
        raise ModelFormatError(f"initializer {name!r}: string tensors cannot be external data")
    if t.HasField("raw_data") and dtype_name != "STRING" and len(t.raw_data) < nbytes:
        raise ModelFormatError(
            f"initializer {name!r} holds {len(t.raw_data)} bytes but its shape "
            f"{list(shape)} and type {dtype_name} need {nbytes}"
        )
    return InitSpec(shape, dtype, numel, nbytes)


def to_array(t: Any, raw: bytes | None = None) -> np.ndarray:
    """Values of a (validated) initializer; `raw` replaces external data. Typed errors."""
    from onnx import TensorProto, numpy_helper

    if raw is not None:
        inline = TensorProto()
        inline.name = t.name
        inline.data_type = t.data_type
        inline.dims.extend(t.dims)
        inline.raw_data = raw
        t = inline
    try:
        return np.asarray(numpy_helper.to_array(t))
    except Exception as e:  # onnx raises ValueError, TypeError, KeyError, ... on bad data
        raise ModelFormatError(f"initializer {t.name!r} is malformed ({e})") from None
