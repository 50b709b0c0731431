"""Named weight tensors of a live model, a mapping, or a model file, read without running code.

Safetensors, ONNX and `.pt`/`.pth`/`.bin`/`.ckpt` state dicts are opened with the lazy
store (`deepscope.analysis.weights.lazy.open_tensors`), which runs every check of the safe
loaders (M1, M2, M6, M7, M9, M11) and reads the structure only; a tensor's values are read
when used (statistics in chunks through `TensorStore.fetch`, pictures from the memory
map). Other files go through `deepscope.load_model` (the safe loaders: a pickle with a
global or any code raises `UnsafeModelError` there). Keras files hand back shapes, dtypes
and the sandbox worker's statistics; their values are read when used, by a second
sandboxed task (`_keras_values.KerasValues`, in batches). Values come back as numpy arrays
numpy can compute with: bf16 widened to float32, int8-quantized torch tensors dequantized.
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

from deepscope.analysis.weights.lazy import TensorStore, open_tensors
from deepscope.errors import DeepscopeError, ModelFormatError

__all__ = ["TensorRef", "collect", "from_store", "to_numpy"]


@dataclass
class TensorRef:
    """One named tensor: metadata always, values on demand (`values()`)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    getter: Callable[[], NDArray[Any]] | None = None
    file_stats: dict[str, Any] | None = None
    layout: str = "torch"  # "keras": kernels are (kh, kw, in, out) / (in, out)
    store: TensorStore | None = None  # the lazy store holding it (chunked statistics)

    def values(self) -> NDArray[Any]:
        """The tensor as a numpy array (read now)."""
        if self.getter is None:
            raise DeepscopeError(
                f"the values of {self.name!r} are not readable from this source (the file's "
                "weights were not read: see the notes)"
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


_LAZY_SUFFIXES = (".safetensors", ".onnx", ".pt", ".pth", ".bin", ".ckpt")


def _from_file(path: Path) -> tuple[list[TensorRef], str, list[str]]:
    if path.name.lower().endswith(_LAZY_SUFFIXES):
        from deepscope.sources.torchscript_file import is_code_archive

        if not path.exists() or not is_code_archive(path):
            return from_store(open_tensors(path))
    from deepscope.sources import load_model

    model = load_model(path, stats=False)  # every safety check happens here
    notes = list(model.notes)
    file_stats: dict[str, Any] = model.graph.meta.get("weightStats", {}) or {}
    keras = None
    if model.format == "keras" and model.weights:
        from deepscope.analysis.weights._keras_values import KerasValues

        keras = KerasValues(
            path,
            legacy=not path.name.lower().endswith(".keras"),
            shapes={n: tuple(w.shape) for n, w in model.weights.items()},
            dtypes={n: w.dtype for n, w in model.weights.items()},
        )
    refs = []
    for name, w in model.weights.items():
        getter = partial(to_numpy, w.values) if w.values is not None else None
        if keras is not None:
            getter = partial(keras.get, name)
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
    if keras is not None:
        notes.append(
            "Keras file: values are read through the sandboxed HDF5 reader when a view needs "
            "them (tensors over 40 MB: statistics only)"
        )
    return refs, model.format, notes


def from_store(store: TensorStore) -> tuple[list[TensorRef], str, list[str]]:
    """The tensors of a lazy store as refs (values read from the store when used)."""
    refs = []
    for name in store.names():
        info = store.info(name)
        refs.append(TensorRef(name, info.shape, info.dtype, partial(store.read, name), store=store))
    return refs, store.format, list(store.notes)
