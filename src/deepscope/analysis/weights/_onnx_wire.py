"""Where each initializer of an ONNX file lies, read from the protobuf wire format itself.

`onnx.load` builds every initializer's `raw_data` as Python bytes, so a 1.5 GB model
costs 1.5 GB of memory before one tensor is looked at. The lazy store only needs, per
initializer of the main graph: its name, dims, data type, data location, external-data
record, and *where* its `raw_data` bytes are in the file. This walker finds them on a
memory map of the file, touching only the pages of the fields it decodes and skipping
every other field by its length (node lists, raw bytes). Nothing is executed or built
from the bytes but integers and short strings; every length and varint is bounds-checked
and any malformation is a `ModelFormatError`.

Field numbers (onnx.proto3): ModelProto.graph = 7; GraphProto.initializer = 5;
TensorProto: dims 1, data_type 2, float_data 4, int32_data 5, string_data 6, int64_data 7,
name 8, raw_data 9, double_data 10, uint64_data 11, external_data 13 (key 1, value 2),
data_location 14. Repeated message fields found twice are concatenated and scalar fields
take the last value, as protobuf's own parser does.

Example:
    >>> data = bytes([0x3A, 6, 0x2A, 4, 0x42, 2]) + b"w0"  # graph { initializer { name } }
    >>> [t.name for t in initializers(data)]
    ['w0']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from deepscope.errors import ModelFormatError

__all__ = ["WireTensor", "initializers"]

_TYPED_FIELDS = {4, 5, 6, 7, 10, 11}


@dataclass
class WireTensor:
    """One initializer as found on the wire (not yet validated)."""

    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    data_location: int = 0
    external: dict[str, str] = field(default_factory=dict)
    raw: tuple[int, int] | None = None  # (file offset, length) of raw_data
    span: tuple[int, int] = (0, 0)  # the TensorProto message itself
    typed: bool = False  # values in float_data / int32_data / ... fields


def _varint(buf: Any, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise ModelFormatError("ONNX protobuf is truncated inside a number")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ModelFormatError("ONNX protobuf holds a number longer than 10 bytes")


def _signed(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _fields(buf: Any, pos: int, end: int) -> Any:
    """(field number, wire type, value or (start, stop) of a length-delimited field)."""
    while pos < end:
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ModelFormatError("ONNX protobuf holds field number 0; the file is corrupt")
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if length > end - pos:
                raise ModelFormatError(
                    f"ONNX protobuf field {number} claims {length} bytes past the end of its "
                    "message; the file is truncated or corrupt"
                )
            yield number, wire, (pos, pos + length)
            pos += length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if size > end - pos:
                raise ModelFormatError("ONNX protobuf is truncated inside a fixed-size field")
            yield number, wire, None
            pos += size
        else:
            raise ModelFormatError(
                f"ONNX protobuf uses wire type {wire} (groups or invalid); not an ONNX model"
            )


def _text(buf: Any, span: tuple[int, int], what: str) -> str:
    data = bytes(buf[span[0] : span[1]])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelFormatError(
            f"ONNX {what} is not valid UTF-8 ({data[:40]!r}); the file is corrupt or not ONNX"
        ) from None


def _tensor(buf: Any, start: int, end: int, max_dims: int) -> WireTensor:
    t = WireTensor(span=(start, end))
    for number, wire, value in _fields(buf, start, end):
        if number == 1:  # dims: packed or one per field
            if wire == 0:
                t.dims.append(_signed(value))
            elif wire == 2:
                pos, stop = value
                while pos < stop:
                    v, pos = _varint(buf, pos, stop)
                    t.dims.append(_signed(v))
            if len(t.dims) > max_dims:
                raise ModelFormatError(f"ONNX initializer has more than {max_dims} dimensions")
        elif number == 2 and wire == 0:
            t.data_type = _signed(value)
        elif number == 8 and wire == 2:
            t.name = _text(buf, value, "initializer name")
        elif number == 9 and wire == 2:
            t.raw = (value[0], value[1] - value[0])
        elif number == 13 and wire == 2:
            key = val = ""
            for n2, w2, v2 in _fields(buf, value[0], value[1]):
                if w2 == 2 and n2 in (1, 2):
                    text = _text(buf, v2, f"external-data entry of {t.name!r}")
                    key, val = (text, val) if n2 == 1 else (key, text)
            t.external[key] = val
        elif number == 14 and wire == 0:
            t.data_location = _signed(value)
        elif number in _TYPED_FIELDS:
            t.typed = True
    return t


def initializers(buf: Any, *, max_dims: int = 64) -> list[WireTensor]:
    """The initializers of the main graph of the serialized ModelProto `buf` (bytes, mmap
    or memoryview), in file order."""
    end = len(buf)
    out: list[WireTensor] = []
    for number, wire, value in _fields(buf, 0, end):
        if number != 7 or wire != 2:
            continue
        for n2, w2, v2 in _fields(buf, value[0], value[1]):
            if n2 == 5 and w2 == 2:
                out.append(_tensor(buf, v2[0], v2[1], max_dims))
    return out
