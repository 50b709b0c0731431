"""Typed arrays on the wire: a small binary envelope instead of JSON lists of floats.

Layout (all little-endian)::

    0  4 bytes  magic b"DSAR"
    4  u8       version (1)
    5  u8       dtype code: 1 float16, 2 float32, 3 uint8, 4 int32
    6  u8       ndim (0..8)
    7  u8       0 (reserved)
    8  ndim x u32  shape
       zero padding up to a multiple of 8 bytes
       the C-order array bytes (exactly prod(shape) * itemsize)

The data starts 8-byte aligned, so the frontend views it in place
(``new Float32Array(buffer, offset, n)``: no copy). A 1024x1024 float32 map is
4,194,320 bytes. Served as ``application/x-deepscope-array``.

Example:
    >>> import numpy as np
    >>> blob = encode(np.arange(6, dtype=np.float32).reshape(2, 3))
    >>> len(blob), decode(blob).tolist()
    (40, [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]])
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deepscope.errors import DeepscopeError, require

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = [
    "CONTENT_TYPE",
    "DTYPES",
    "MAX_ARRAY_BYTES",
    "ArrayHeader",
    "EnvelopeError",
    "decode",
    "encode",
    "read_header",
]

MAGIC = b"DSAR"
VERSION = 1
CONTENT_TYPE = "application/x-deepscope-array"
DTYPES: dict[int, str] = {1: "float16", 2: "float32", 3: "uint8", 4: "int32"}
CODES = {name: code for code, name in DTYPES.items()}
ITEMSIZE: dict[str, int] = {"float16": 2, "float32": 4, "uint8": 1, "int32": 4}
MAX_NDIM = 8
MAX_ARRAY_BYTES = 64 * 1024 * 1024
"""The largest array payload written or served (64 MiB: a 4096x4096 float32 map)."""


class EnvelopeError(DeepscopeError):
    """Bytes that are not a well-formed deepscope array envelope, or an unsupported array."""

    http_status = 422


@dataclass(frozen=True)
class ArrayHeader:
    """What an envelope's header says: dtype name, shape and where the data starts."""

    dtype: str
    shape: tuple[int, ...]
    offset: int

    @property
    def nbytes(self) -> int:
        """Bytes of array data the header announces."""
        return math.prod(self.shape) * ITEMSIZE[self.dtype]  # no numpy: the server reads headers


def header_size(ndim: int) -> int:
    """Bytes before the data for an `ndim`-dimensional array (a multiple of 8)."""
    return (8 + 4 * ndim + 7) // 8 * 8


def encode(array: Any, dtype: str | None = None) -> bytes:
    """The envelope of `array` (cast to `dtype` when given; float64 becomes float32)."""
    require("numpy", "arrays")
    import numpy as np

    arr = np.asarray(array)
    if dtype is None:
        dtype = "float32" if arr.dtype.kind == "f" and arr.dtype != np.float16 else arr.dtype.name
    if dtype not in CODES:
        raise EnvelopeError(
            f"arrays travel as {sorted(CODES)}; cast this {arr.dtype} array to one of them"
        )
    if arr.ndim > MAX_NDIM:
        raise EnvelopeError(f"an array on the wire has at most {MAX_NDIM} dims, got {arr.ndim}")
    data = np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<"))
    if data.nbytes > MAX_ARRAY_BYTES:
        raise EnvelopeError(
            f"array of {data.nbytes} bytes is over the {MAX_ARRAY_BYTES}-byte cap; downsample it"
        )
    head = MAGIC + struct.pack("<BBBB", VERSION, CODES[dtype], arr.ndim, 0)
    head += struct.pack(f"<{arr.ndim}I", *arr.shape)
    head += b"\0" * (header_size(arr.ndim) - len(head))
    return head + data.tobytes()


def read_header(blob: bytes | memoryview, total: int | None = None) -> ArrayHeader:
    """The header of an envelope; `EnvelopeError` unless the header is well formed and the
    length (`total`, default ``len(blob)``) is exactly header plus data."""
    view = memoryview(blob)
    if len(view) < 8 or bytes(view[:4]) != MAGIC:
        raise EnvelopeError("not a deepscope array (bad magic)")
    version, code, ndim, reserved = struct.unpack_from("<BBBB", view, 4)
    if version != VERSION or reserved != 0:
        raise EnvelopeError(f"unsupported array envelope version {version}")
    if code not in DTYPES:
        raise EnvelopeError(f"unknown dtype code {code} in array envelope")
    if ndim > MAX_NDIM:
        raise EnvelopeError(f"array envelope with {ndim} dims (at most {MAX_NDIM})")
    offset = header_size(ndim)
    if len(view) < 8 + 4 * ndim:
        raise EnvelopeError("array envelope header is cut short")
    shape = struct.unpack_from(f"<{ndim}I", view, 8)
    header = ArrayHeader(DTYPES[code], tuple(int(s) for s in shape), offset)
    if header.nbytes > MAX_ARRAY_BYTES:
        raise EnvelopeError(f"array envelope announces {header.nbytes} bytes (over the cap)")
    length = len(view) if total is None else total
    if length != offset + header.nbytes:
        raise EnvelopeError(
            f"array envelope holds {length - offset} data bytes, its header says {header.nbytes}"
        )
    return header


def decode(blob: bytes | memoryview) -> NDArray[Any]:
    """The array in an envelope: a read-only view over `blob`'s bytes (no copy)."""
    require("numpy", "arrays")
    import numpy as np

    header = read_header(blob)
    flat = np.frombuffer(blob, dtype=np.dtype(header.dtype).newbyteorder("<"), offset=header.offset)
    return flat.reshape(header.shape)
