"""Weights an ONNX graph generates instead of storing: ConstantOfShape, Random*, Constant.

Files made "light" (onnx's `light_*.onnx`) replace each weight initializer by a
`ConstantOfShape` of a constant shape vector. Such a generated tensor is a parameter of the
node that reads it as a weight input (a Conv's weight and bias, a Gemm's B and C, ...),
with `prod(shape)` elements; the shape vector itself is not a parameter.

Example:
    >>> weight_input("Conv", "", 1), weight_input("Reshape", "", 0)
    (True, False)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["GENERATORS", "constant_value", "generated_shape", "weight_input"]

GENERATORS = frozenset({"ConstantOfShape", "Constant", "RandomNormal", "RandomUniform"})
_MAX_RANK = 8
_MAX_NUMEL = 1 << 48  # a generated "weight" past this is a hostile shape: not a parameter

# op -> input positions that hold weights (not activations, shapes or indices)
_WEIGHT_INPUTS: dict[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}),
    "ConvTranspose": frozenset({1, 2}),
    "Gemm": frozenset({1, 2}),
    "MatMul": frozenset({0, 1}),
    "BatchNormalization": frozenset({1, 2, 3, 4}),
    "InstanceNormalization": frozenset({1, 2}),
    "LayerNormalization": frozenset({1, 2}),
    "GroupNormalization": frozenset({1, 2}),
    "LSTM": frozenset({1, 2, 3}),
    "GRU": frozenset({1, 2, 3}),
    "RNN": frozenset({1, 2, 3}),
    "PRelu": frozenset({1}),
    "Gather": frozenset({0}),
}


def weight_input(op: str, domain: str, index: int) -> bool:
    """Whether input `index` of a standard-domain `op` is a weight."""
    return domain in ("", "ai.onnx") and index in _WEIGHT_INPUTS.get(op, frozenset())


def _shape_of(values: np.ndarray | None) -> tuple[int, ...] | None:
    if values is None or values.ndim != 1 or values.size > _MAX_RANK:
        return None
    if values.dtype.kind not in "iu" or (values < 0).any():
        return None
    return tuple(int(d) for d in values)


def generated_shape(n: Any, shape_values: np.ndarray | None) -> tuple[tuple[int, ...], str] | None:
    """(shape, dtype) of what generator node `n` writes when that is constant, else None.

    `shape_values` is the value of a ConstantOfShape's shape input when it is constant.
    """
    from onnx import helper

    attrs = {a.name: a for a in n.attribute}
    shape: tuple[int, ...] | None = None
    dtype = "float32"
    if n.op_type == "ConstantOfShape":
        shape = _shape_of(shape_values)
        if "value" in attrs:
            dtype = _np_name(attrs["value"].t.data_type) or dtype
    elif n.op_type in ("RandomNormal", "RandomUniform"):
        if "shape" in attrs:
            shape = _shape_of(np.asarray(list(attrs["shape"].ints), dtype=np.int64))
        if "dtype" in attrs:
            dtype = _np_name(int(helper.get_attribute_value(attrs["dtype"]))) or dtype
    elif n.op_type == "Constant" and "value" in attrs:
        shape = _shape_of(np.asarray(list(attrs["value"].t.dims), dtype=np.int64))
        dtype = _np_name(attrs["value"].t.data_type) or dtype
    if shape is None or math.prod(shape) > _MAX_NUMEL:
        return None
    return shape, dtype


def constant_value(n: Any) -> np.ndarray | None:
    """The value of a small integer `Constant` node (a shape vector), else None."""
    from onnx import TensorProto, numpy_helper

    for a in n.attribute:
        if a.name == "value" and a.t.data_type in (TensorProto.INT64, TensorProto.INT32):
            if math.prod(a.t.dims) <= _MAX_RANK and a.t.data_location != TensorProto.EXTERNAL:
                try:
                    return np.asarray(numpy_helper.to_array(a.t))
                except Exception:
                    return None
    return None


def _np_name(elem_type: int) -> str | None:
    from onnx import helper

    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type).name) if elem_type else None
    except (KeyError, ValueError, TypeError):
        return None
