"""The lazy store of an `.onnx` file: initializers located on the wire, read in place.

See `lazy` for the contract and `_onnx_wire` for the walker. Per initializer of the main
graph: `check_initializer` validates dtype and dims (on a stub without the data); inline
`raw_data` is a view on the memory-mapped .onnx; external data goes through
`onnx_file.check_external` (M7: relative, inside the model folder, no `..`, no symlink,
regular file, one hard link, offsets inside the file) before anything is opened, then
`open_external` (O_NOFOLLOW, re-checked on the descriptor) and a read-only map.

Example:
    >>> store = OnnxStore(Path("model.onnx"))                # doctest: +SKIP
    >>> store.info("fc.weight").file                          # doctest: +SKIP
    '/models/weights.bin'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.analysis.weights._onnx_wire import WireTensor, initializers
from deepscope.analysis.weights.lazy import TensorInfo, TensorStore, _bf16, _Entry, _st_decoder
from deepscope.errors import ModelFormatError

__all__ = ["OnnxStore"]

_NUMPY = {
    "bool",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
}
# ONNX type name -> (stored bits, decoder)
_DECODED = {
    "BFLOAT16": ("<u2", _bf16),
    "FLOAT8E5M2": ("u1", _st_decoder("F8_E5M2")),
    "FLOAT8E4M3FN": ("u1", _st_decoder("F8_E4M3")),
}


def _stub(w: WireTensor) -> Any:
    from onnx import TensorProto

    t = TensorProto()
    t.name = w.name
    try:
        t.dims.extend(w.dims)
        t.data_type = w.data_type
        t.data_location = w.data_location  # type: ignore[assignment]
    except (ValueError, TypeError):
        raise ModelFormatError(
            f"initializer {w.name!r}: data type {w.data_type} / location {w.data_location} "
            "is out of range"
        ) from None
    return t


class OnnxStore(TensorStore):
    """An `.onnx` file's initializers, inline or external, read on demand."""

    format = "onnx"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from deepscope.sources import _limits

        _limits.check_onnx_version()
        try:
            fd = self._open_fd(self.path)
            buffer = self._map(fd)
            found = initializers(buffer if buffer is not None else b"")
            self._externals: dict[Path, tuple[int, Any]] = {}
            for w in found:
                self._add(w, fd, buffer)
        except BaseException:
            self.close()
            raise

    def _add(self, w: WireTensor, fd: int, buffer: Any) -> None:
        from onnx import TensorProto

        from deepscope.sources._onnx_checks import check_initializer

        if w.typed and w.raw is None and w.data_location != TensorProto.EXTERNAL:
            self._add_parsed(w, buffer)
            return
        spec = check_initializer(_stub(w))
        kind = TensorProto.DataType.Name(w.data_type)
        shape = spec.shape
        dtype = spec.dtype.name if spec.dtype != np.dtype(object) else "string"
        if kind in _DECODED:
            stored: np.dtype[Any] | None = np.dtype(_DECODED[kind][0])
            decode = _DECODED[kind][1]
        elif dtype in _NUMPY:
            stored, decode = spec.dtype.newbyteorder("<"), None
        else:  # sub-byte, other float8 kinds, strings: onnx decodes a copy
            stored, decode = None, None
        if w.data_location == TensorProto.EXTERNAL:
            efd, ebuf, offset, where = self._external(w, spec.nbytes)
        else:
            raw_off, raw_len = w.raw if w.raw is not None else (0, 0)
            if spec.numel and raw_len < spec.nbytes:
                raise ModelFormatError(
                    f"initializer {w.name!r} holds {raw_len} bytes but its shape {list(shape)} "
                    f"and type {kind} need {spec.nbytes}"
                )
            efd, ebuf, offset, where = fd, buffer, raw_off, str(self.path)
        info = TensorInfo(w.name, shape, dtype, spec.nbytes, offset, where)
        if stored is None:
            reader = _copy_reader(w, ebuf, offset, spec.nbytes)
            self._entries[w.name] = _Entry(info, None, None, provider=reader)
        else:
            self._entries[w.name] = _Entry(info, stored, decode, efd, ebuf)

    def _external(self, w: WireTensor, nbytes: int) -> tuple[int, Any, int, str]:
        from deepscope.sources.onnx_file import check_external, open_external

        ref = check_external(self.path.parent, w.external, w.name)  # M7, before any open
        if ref.length is not None and 0 <= ref.length < nbytes:
            raise ModelFormatError(
                f"initializer {w.name!r}: external data length {ref.length} is less than the "
                f"{nbytes} bytes its shape and type need"
            )
        if ref.path not in self._externals:
            efd = open_external(ref)
            self._fds.append(efd)
            self._externals[ref.path] = (efd, self._map(efd))
        efd, ebuf = self._externals[ref.path]
        if ref.offset + nbytes > os.fstat(efd).st_size:
            raise ModelFormatError(
                f"initializer {w.name!r} needs {nbytes} bytes of {ref.path.name} from offset "
                f"{ref.offset}; the file is shorter"
            )
        return efd, ebuf, ref.offset, str(ref.path)

    def _add_parsed(self, w: WireTensor, buffer: Any) -> None:
        """An initializer whose values are in typed fields: parse that message alone."""
        from onnx import TensorProto

        from deepscope.sources._onnx_checks import check_initializer, to_array

        try:
            t = TensorProto.FromString(bytes(buffer[w.span[0] : w.span[1]]))
        except Exception as e:  # protobuf DecodeError
            raise ModelFormatError(f"initializer {w.name!r} is malformed ({e})") from None
        spec = check_initializer(t)
        dtype = spec.dtype.name if spec.dtype != np.dtype(object) else "string"
        info = TensorInfo(w.name, spec.shape, dtype, spec.nbytes, None, str(self.path))
        self._entries[w.name] = _Entry(info, None, None, provider=lambda: to_array(t))


def _copy_reader(w: WireTensor, buffer: Any, offset: int, nbytes: int) -> Any:
    def read() -> NDArray[Any]:
        from deepscope.sources._onnx_checks import to_array

        data = bytes(buffer[offset : offset + nbytes]) if nbytes and buffer is not None else b""
        return to_array(_stub(w), data)

    return read
