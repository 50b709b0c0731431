"""`.safetensors` files, read by our own header parser (M9); values memory-mapped on demand (N4).

Layout (https://github.com/huggingface/safetensors): 8-byte little-endian header size N,
N bytes of UTF-8 JSON (`{"name": {"dtype", "shape", "data_offsets"}, "__metadata__": {...}}`),
then the data section, which the tensors must cover exactly, without overlaps or gaps.

Example:
    >>> model = load(Path("model.safetensors"))          # doctest: +SKIP
    >>> model.weights["fc.weight"].shape
    (10, 784)
"""

from __future__ import annotations

import json
import math
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from deepscope.errors import ModelFormatError
from deepscope.sources import _limits
from deepscope.sources._weights import graph_from_tensors, tensor_stats
from deepscope.sources.base import Model, WeightInfo

SUFFIXES = (".safetensors",)


class SafetensorsFormatError(ModelFormatError):
    """A `.safetensors` file breaks the format; the message names the rule."""


class HeaderSizeError(SafetensorsFormatError):
    """The 8-byte header size is larger than the cap or than the file."""


class HeaderJSONError(SafetensorsFormatError):
    """The header is not a UTF-8 JSON object without duplicate keys."""


class TensorEntryError(SafetensorsFormatError):
    """A tensor entry has an unknown dtype, a bad shape or the wrong byte count."""


class OffsetError(SafetensorsFormatError):
    """Tensor byte ranges overlap, leave gaps or run past the data section."""


# name -> (itemsize, numpy dtype of the stored bits)
DTYPES: dict[str, tuple[int, str]] = {
    "BOOL": (1, "bool"),
    "U8": (1, "uint8"),
    "I8": (1, "int8"),
    "F8_E5M2": (1, "uint8"),
    "F8_E4M3": (1, "uint8"),
    "F8_E8M0": (1, "uint8"),
    "I16": (2, "<i2"),
    "U16": (2, "<u2"),
    "F16": (2, "<f2"),
    "BF16": (2, "<u2"),
    "I32": (4, "<i4"),
    "U32": (4, "<u4"),
    "F32": (4, "<f4"),
    "F64": (8, "<f8"),
    "I64": (8, "<i8"),
    "U64": (8, "<u8"),
    "C64": (8, "<c8"),
}
_DISPLAY = {
    "BOOL": "bool",
    "BF16": "bfloat16",
    "F8_E5M2": "float8_e5m2",
    "F8_E4M3": "float8_e4m3fn",
}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def display_dtype(st_dtype: str) -> str:
    """`"F32"` → `"float32"`, `"BF16"` → `"bfloat16"` (names shown in the views)."""
    if st_dtype in _DISPLAY:
        return _DISPLAY[st_dtype]
    if st_dtype == "F8_E8M0":
        return "float8_e8m0fnu"
    return str(np.dtype(DTYPES[st_dtype][1]).name)


@dataclass(frozen=True)
class TensorEntry:
    """One header entry, validated. `begin`/`end` are absolute file offsets."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class Header:
    """A validated safetensors header."""

    tensors: dict[str, TensorEntry]
    metadata: dict[str, str] = field(default_factory=dict)
    data_start: int = 8


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise HeaderJSONError(f"safetensors header repeats the key {k!r}")
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise HeaderJSONError(f"safetensors header holds the non-JSON constant {name}")


def parse_header(
    raw: bytes,
    file_size: int,
    *,
    max_entries: int = _limits.SAFETENSORS_MAX_ENTRIES,
) -> Header:
    """Validate the header bytes (without the 8-byte prefix) of a file of `file_size` bytes."""
    n = len(raw)
    if n == 0 or raw[:1] != b"{":
        raise HeaderJSONError(
            "safetensors header must start with '{'; this is not a safetensors file"
        )
    # Bound the parsed object count before json builds it (a 100 MB header of tiny items).
    if raw.count(b",") > 32 * max_entries or raw.count(b'"') > 24 * max_entries:
        raise HeaderJSONError(f"safetensors header has more items than {max_entries} tensors need")
    try:
        text = raw.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except SafetensorsFormatError:
        raise
    except UnicodeDecodeError as e:
        raise HeaderJSONError(f"safetensors header is not valid UTF-8 ({e.reason})") from None
    except (ValueError, RecursionError) as e:
        raise HeaderJSONError(f"safetensors header is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise HeaderJSONError("safetensors header must be a JSON object")
    if len(obj) > max_entries:
        raise HeaderJSONError(
            f"safetensors header lists {len(obj)} entries; the limit is {max_entries}"
        )
    data_start = 8 + n
    data_len = file_size - data_start
    metadata = _metadata(obj.pop("__metadata__", None))
    tensors = {name: _entry(name, e, data_start, data_len) for name, e in obj.items()}
    _check_coverage(tensors, data_start, data_len)
    return Header(tensors=tensors, metadata=metadata, data_start=data_start)


def _metadata(meta: Any) -> dict[str, str]:
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise HeaderJSONError("safetensors __metadata__ must map strings to strings")
    return dict(meta)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


_MAX_DIM = 2**63 - 1
_MAX_SPAN = 2**62


def _shape_text(shape: list[int]) -> str:
    text = str(shape)
    return text if len(text) <= 120 else text[:117] + "..."


def _entry(name: str, e: Any, data_start: int, data_len: int) -> TensorEntry:
    if not isinstance(e, dict) or set(e) != _ENTRY_KEYS:
        raise TensorEntryError(
            f"tensor {name!r}: an entry needs exactly the keys dtype, shape, data_offsets"
        )
    dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise TensorEntryError(f"tensor {name!r}: unknown dtype {str(dtype)[:40]!r}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise TensorEntryError(f"tensor {name!r}: shape must be a list of non-negative integers")
    if len(shape) > 64:
        raise TensorEntryError(f"tensor {name!r}: {len(shape)} dimensions is more than 64")
    shown = _shape_text(shape)
    if any(d > _MAX_DIM for d in shape):
        raise TensorEntryError(f"tensor {name!r}: shape {shown} has a dimension past 2**63 - 1")
    nonzero = DTYPES[dtype][0] * math.prod(d for d in shape if d)
    if nonzero > _MAX_SPAN:  # even with 0 elements, numpy cannot hold such a shape
        raise TensorEntryError(
            f"tensor {name!r}: shape {shown} spans more than 2**62 bytes; no array can have it"
        )
    nbytes = DTYPES[dtype][0]
    for d in shape:  # Python ints cannot overflow; stop as soon as it passes the file
        nbytes *= d
        if nbytes > data_len and nbytes > 0:
            raise TensorEntryError(
                f"tensor {name!r}: shape {shown} needs more bytes than the file holds"
            )
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_int(o) and o >= 0 for o in offsets)
    ):
        raise OffsetError(f"tensor {name!r}: data_offsets must be [begin, end], non-negative")
    begin, end = offsets
    if end < begin:
        raise OffsetError(f"tensor {name!r}: data_offsets end {end} is before begin {begin}")
    if end > data_len:
        raise OffsetError(f"tensor {name!r}: data_offsets end {end} is past the end of the file")
    if end - begin != nbytes:
        raise TensorEntryError(
            f"tensor {name!r}: {end - begin} bytes stored but dtype {dtype} and shape {shown} "
            f"need {nbytes}"
        )
    return TensorEntry(name, dtype, tuple(shape), data_start + begin, data_start + end)


def _check_coverage(tensors: dict[str, TensorEntry], data_start: int, data_len: int) -> None:
    pos = data_start
    for t in sorted(tensors.values(), key=lambda t: (t.begin, t.end)):
        if t.begin < pos:
            raise OffsetError(f"tensor {t.name!r}: its bytes overlap another tensor's")
        if t.begin > pos:
            raise OffsetError(f"tensor {t.name!r}: a gap of {t.begin - pos} bytes precedes it")
        pos = t.end
    if pos != data_start + data_len:
        raise OffsetError(
            f"the tensors cover {pos - data_start} bytes but the data section holds {data_len} "
            "(incomplete or padded buffer)"
        )


def read_header(path: Path, **kwargs: int) -> Header:
    """Read and validate the header of `path` without reading the data section."""
    size = os.stat(path).st_size
    with open(path, "rb") as f:
        return read_header_from(f, size, Path(path).name, **kwargs)


def read_header_from(f: BinaryIO, size: int, name: str, **kwargs: int) -> Header:
    """Validate the header of the open file `f` of `size` bytes (`name` for messages),
    reading its first 8 + N bytes only (the lazy store reads through its own descriptor)."""
    f.seek(0)
    prefix = f.read(8)
    if len(prefix) < 8:
        raise HeaderSizeError(f"{name}: {size} bytes is too short for safetensors")
    (n,) = struct.unpack("<Q", prefix)
    if n > _limits.SAFETENSORS_HEADER_CAP:
        raise HeaderSizeError(f"{name}: header size {n} is over the 100 MB limit of the format")
    if n > size - 8:
        raise HeaderSizeError(
            f"{name}: header size {n} is larger than the file ({size} bytes); "
            "truncated or not a safetensors file"
        )
    raw = f.read(n)
    if len(raw) != n:
        raise HeaderSizeError(f"{name}: the file ended inside its {n}-byte header")
    return parse_header(raw, size, **kwargs)


_E4M3: np.ndarray | None = None


def _f8_e4m3_table() -> np.ndarray:
    global _E4M3
    if _E4M3 is None:
        b = np.arange(256)
        sign = np.where(b & 0x80, -1.0, 1.0)
        exp, man = (b >> 3) & 0xF, b & 0x7
        val = np.where(exp == 0, man / 8 * 2.0**-6, (1 + man / 8) * 2.0 ** (exp - 7.0))
        val = np.where((exp == 15) & (man == 7), np.nan, val)
        _E4M3 = (sign * val).astype(np.float32)
    return _E4M3


def to_numeric(raw: np.ndarray, st_dtype: str) -> np.ndarray:
    """Stored bits → a numpy dtype numpy can compute with (bf16/f8 widened to float32)."""
    if st_dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    if st_dtype == "F8_E5M2":
        return (raw.astype(np.uint16) << 8).view(np.float16)
    if st_dtype == "F8_E4M3":
        table: np.ndarray = _f8_e4m3_table()
        return np.asarray(table[raw])
    if st_dtype == "F8_E8M0":
        out = np.exp2(raw.astype(np.float32) - 127)
        out[raw == 255] = np.nan
        return out
    return raw


class SafetensorsFile:
    """A validated file whose tensors are memory-mapped views (nothing read until used)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.header = read_header(self.path)
        self._map: mmap.mmap | None = None
        if any(t.end > t.begin for t in self.header.tensors.values()):
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def raw(self, name: str) -> np.ndarray:
        """The stored bits of one tensor as a read-only memory-mapped numpy view."""
        t = self.header.tensors[name]
        dt = np.dtype(DTYPES[t.dtype][1])
        if t.end == t.begin or self._map is None:
            return np.zeros(t.shape, dtype=dt)
        return np.frombuffer(self._map, dtype=dt, count=t.numel, offset=t.begin).reshape(t.shape)

    def array(self, name: str) -> np.ndarray:
        """One tensor as numbers (lazy for numpy dtypes; bf16/f8 converted to float on read)."""
        return to_numeric(self.raw(name), self.header.tensors[name].dtype)

    def stats(self, name: str, chunk: int = 1 << 22) -> dict[str, Any]:
        """count/min/max/mean/std/n_nan/n_inf, reading `chunk` elements at a time."""
        from deepscope.sources._weights import StatsAccumulator

        acc = StatsAccumulator()
        flat = self.raw(name).reshape(-1)
        dtype = self.header.tensors[name].dtype
        for start in range(0, flat.size, chunk):
            acc.add(to_numeric(np.array(flat[start : start + chunk]), dtype))
        return acc.result()


def match(target: object) -> bool:
    """A path ending in `.safetensors`."""
    return isinstance(target, (str, Path)) and str(target).lower().endswith(SUFFIXES)


def load(
    target: object,
    *,
    trust: bool = False,
    stats: bool | None = None,
    values: bool = False,
    **options: Any,
) -> Model:
    """Read a `.safetensors` file: validated header, weights, statistics.

    `stats`: compute statistics per tensor (default: when the data section is ≤ 256 MB).
    `values`: attach every tensor as a lazy memory-mapped array (default: small ones only,
    copied). `trust` changes nothing: this format cannot hold code.
    """
    path = Path(str(target))
    f = SafetensorsFile(path)
    tensors = f.header.tensors
    data_len = path.stat().st_size - f.header.data_start
    do_stats = data_len <= 256 * _limits.MB if stats is None else stats
    graph = graph_from_tensors(
        ((n, t.shape, display_dtype(t.dtype)) for n, t in tensors.items()), "safetensors"
    )
    graph.meta["metadata"] = dict(f.header.metadata)
    weights: dict[str, WeightInfo] = {}
    for node in graph.nodes:
        t = tensors[node.id]
        if do_stats:
            node.attrs["stats"] = f.stats(t.name)
        vals: np.ndarray | None = None
        if values:
            vals = f.array(t.name)
        elif t.numel <= _limits.SMALL_TENSOR_NUMEL:
            vals = np.array(f.array(t.name))
        weights[t.name] = WeightInfo(t.name, t.shape, display_dtype(t.dtype), vals)
    notes = [] if do_stats else ["statistics not computed (large file): pass stats=True"]
    return Model(graph=graph, weights=weights, format="safetensors", notes=notes)


__all__ = [
    "load",
    "match",
    "read_header",
    "read_header_from",
    "parse_header",
    "to_numeric",
    "DTYPES",
    "SafetensorsFile",
    "tensor_stats",
]
