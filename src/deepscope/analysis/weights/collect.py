"""Named weight tensors of a live model, a mapping, or a model file, read without running code.

Files go through `deepscope.load_model` first (the safe loaders: a pickle with a global or
any code raises `UnsafeModelError` there); values are then read lazily, one tensor at a
time, by the same format code: safetensors memory-mapped, `.pt` state dicts with the
weights-only unpickler, ONNX initializers from the protobuf (external data checked).
Keras files hand back shapes, dtypes and the worker's statistics only (values stay in the
sandbox worker). Values come back as numpy arrays numpy can compute with: bf16 widened to
float32, int8-quantized torch tensors dequantized.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.errors import DeepscopeError, ModelFormatError

__all__ = ["TensorRef", "collect", "to_numpy"]


@dataclass
class TensorRef:
    """One named tensor: metadata always, values on demand (`values()`)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    getter: Callable[[], NDArray[Any]] | None = None
    file_stats: dict[str, Any] | None = None
    layout: str = "torch"  # "keras": kernels are (kh, kw, in, out) / (in, out)

    def values(self) -> NDArray[Any]:
        """The tensor as a numpy array (read now)."""
        if self.getter is None:
            raise DeepscopeError(
                f"the values of {self.name!r} are not readable from this source (Keras files "
                "keep them in the sandbox worker): pass the live Keras model instead"
            )
        return self.getter()


def to_numpy(value: Any) -> NDArray[Any]:
    """A torch tensor, Keras variable or array-like as a numpy array numpy computes with."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach().cpu()
        if t.is_quantized:
            t = t.dequantize()
        if t.dtype in (torch.bfloat16,) or (
            t.dtype.is_floating_point and t.element_size() < 2
        ):  # bf16 / float8: numpy has no such dtype
            t = t.float()
        return np.asarray(t.numpy())
    if hasattr(value, "value") and not isinstance(value, np.ndarray):  # a Keras variable
        return to_numpy(value.value)
    return np.asarray(value)


def _is_module(target: object) -> bool:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(target, torch.nn.Module):
        return True
    from deepscope.sources._module_tree import is_keras

    return is_keras(target)


def collect(target: Any) -> tuple[list[TensorRef], str, list[str]]:
    """The named tensors of `target`, its format name, and notes."""
    if _is_module(target):
        from deepscope.sources._module_tree import is_keras, named_parameters

        layout = "keras" if is_keras(target) else "torch"
        refs = []
        for name, p in named_parameters(target):
            refs.append(
                TensorRef(
                    name,
                    tuple(int(d) for d in p.shape),
                    str(p.dtype).removeprefix("torch."),
                    partial(to_numpy, p),
                    layout=layout,
                )
            )
        return refs, "keras" if layout == "keras" else "torch", []
    if isinstance(target, Mapping):
        refs = []
        for name, v in target.items():
            if not hasattr(v, "shape") or not hasattr(v, "dtype"):
                v = np.asarray(v)
            shape = tuple(int(d) for d in v.shape)
            dtype = str(v.dtype).removeprefix("torch.")
            refs.append(TensorRef(str(name), shape, dtype, partial(to_numpy, v)))
        return refs, "mapping", []
    if isinstance(target, (str, os.PathLike)):
        return _from_file(Path(target))
    raise ModelFormatError(
        f"deepscope.weights cannot read a {type(target).__name__}: pass a torch.nn.Module, "
        "a Keras model, a {name: tensor} mapping or a model file path"
    )


def _from_file(path: Path) -> tuple[list[TensorRef], str, list[str]]:
    from deepscope.sources import load_model

    model = load_model(path, stats=False)  # every safety check happens here
    notes = list(model.notes)
    readers: dict[str, Callable[[str], NDArray[Any]]] = {}
    if model.format == "safetensors":
        from deepscope.sources.safetensors_file import SafetensorsFile

        f = SafetensorsFile(path)
        readers = {n: f.array for n in model.weights}
    elif model.format == "state_dict":
        readers = _state_dict_readers(path, model)
    elif model.format == "onnx":
        readers = _onnx_readers(path, model)
    file_stats: dict[str, Any] = model.graph.meta.get("weightStats", {}) or {}
    refs = []
    for name, w in model.weights.items():
        getter: Callable[[], NDArray[Any]] | None = None
        if name in readers:
            getter = partial(_read_named, readers[name], name)
        elif w.values is not None:
            getter = partial(to_numpy, w.values)
        refs.append(
            TensorRef(
                name,
                tuple(w.shape),
                w.dtype,
                getter,
                file_stats.get(name),
                "keras" if model.format == "keras" else "torch",
            )
        )
    if model.format == "keras":
        notes.append("Keras file: statistics from the sandbox worker; values are not read")
    return refs, model.format, notes


def _read_named(reader: Callable[[str], NDArray[Any]], name: str) -> NDArray[Any]:
    return np.asarray(reader(name))


def _state_dict_readers(path: Path, model: Any) -> dict[str, Callable[[str], NDArray[Any]]]:
    if all(w.values is not None for w in model.weights.values()):
        return {}
    from deepscope.sources import state_dict as sd

    cache: dict[str, Any] = {}

    def read(name: str) -> NDArray[Any]:
        if not cache:
            selected, _ = sd._select(sd._safe_torch_load(path))  # weights-only unpickler
            cache.update(dict(sd.iter_tensors(selected)))
        return to_numpy(cache[name])

    return {n: read for n, w in model.weights.items() if w.values is None}


def _onnx_readers(path: Path, model: Any) -> dict[str, Callable[[str], NDArray[Any]]]:
    missing = {n for n, w in model.weights.items() if w.values is None}
    if not missing:
        return {}
    import onnx
    from onnx import TensorProto

    from deepscope.sources._onnx_checks import check_initializer, to_array
    from deepscope.sources.onnx_file import _read_external, check_external

    proto = onnx.load(str(path), load_external_data=False)
    inits = {t.name: t for t in proto.graph.initializer if t.name in missing}

    def read(name: str) -> NDArray[Any]:
        t = inits[name]
        spec = check_initializer(t)
        if t.data_location == TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in t.external_data}
            ref = check_external(path.parent, entries, name)
            return np.asarray(to_array(t, _read_external(ref, spec.nbytes)))
        return np.asarray(to_array(t))

    return {n: read for n in inits}
