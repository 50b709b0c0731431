"""Strict JSON for everything deepscope writes or serves: the one non-finite codec.

`json.dumps` writes ``NaN``/``Infinity`` by default, which `JSON.parse` rejects. Here a
non-finite float becomes ``{"nonfinite": "nan" | "+inf" | "-inf"}`` and `loads` turns it
back into a float, so values round-trip by class. ``-0.0`` stays ``-0.0``.

Example:
    >>> dumps({"loss": float("nan"), "lr": 0.1})
    '{"loss":{"nonfinite":"nan"},"lr":0.1}'
    >>> loads('{"x": {"nonfinite": "-inf"}}')
    {'x': -inf}

Imports the standard library only (numpy and torch values are handled by duck typing), so
both `deepscope.graph` (stdlib only) and `deepscope.store` (stdlib and numpy) use it; the
store's public name for it is `deepscope.store.jsonenc`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any

NONFINITE_KEY = "nonfinite"
_NONFINITE = {"nan": math.nan, "+inf": math.inf, "-inf": -math.inf}

__all__ = [
    "NONFINITE_KEY",
    "camel",
    "decode",
    "dumps",
    "encode_float",
    "encode",
    "float_class",
    "loads",
    "snake_to_camel",
]


def float_class(x: float) -> str:
    """``"finite"``, ``"nan"``, ``"+inf"`` or ``"-inf"``."""
    if math.isfinite(x):
        return "finite"
    if math.isnan(x):
        return "nan"
    return "+inf" if x > 0 else "-inf"


def encode_float(x: float) -> Any:
    """`x` itself when finite, else its ``{"nonfinite": ...}`` marker."""
    if math.isfinite(x):
        return x
    return {NONFINITE_KEY: float_class(x)}


def snake_to_camel(name: str) -> str:
    """``"sum_sq"`` -> ``"sumSq"``; leading underscores and other names are kept."""
    head, *rest = name.split("_")
    if not head or not rest:
        return name
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def encode(obj: Any, *, camel: bool = False, _depth: int = 0) -> Any:
    """Turn `obj` into plain JSON values (dict/list/str/int/float/bool/None), strictly.

    Handles floats (non-finite become markers), numpy/torch scalars and arrays (via
    ``item``/``tolist``), dataclasses, mappings, sequences, enums and paths. With
    ``camel=True`` dataclass field names and mapping keys become camelCase.
    Raises `TypeError` for anything else (bytes, sets of objects, arbitrary classes).
    """
    if _depth > 200:
        raise ValueError("structure too deeply nested for JSON (more than 200 levels)")
    t = type(obj)
    if obj is None or t is str or t is bool or t is int:
        return obj
    if t is float:
        return encode_float(obj)
    d = _depth + 1
    if t is list or t is tuple:
        return [encode(v, camel=camel, _depth=d) for v in obj]
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            key = _key(k)
            out[snake_to_camel(key) if camel else key] = encode(v, camel=camel, _depth=d)
        return out
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {
            (snake_to_camel(f.name) if camel else f.name): encode(
                getattr(obj, f.name), camel=camel, _depth=d
            )
            for f in dataclasses.fields(obj)
        }
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, Enum):
        return encode(obj.value, camel=camel, _depth=d)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return encode_float(float(obj))
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, (list, tuple)):
        return [encode(v, camel=camel, _depth=d) for v in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raise TypeError("bytes are not JSON; store them as a blob (run.log_blob)")
    # numpy scalars/arrays and torch tensors, without importing either
    shape = getattr(obj, "shape", None)
    if shape is not None and hasattr(obj, "tolist"):
        if getattr(obj, "dtype", None) is not None and "complex" in str(obj.dtype):
            raise TypeError(f"complex values are not JSON: {type(obj).__name__} of {obj.dtype}")
        if hasattr(obj, "detach"):
            obj = obj.detach().cpu()
            if "bfloat16" in str(obj.dtype) or "float8" in str(obj.dtype):
                obj = obj.float()
        return encode(obj.tolist(), camel=camel, _depth=d)
    if hasattr(obj, "item") and hasattr(obj, "dtype"):
        return encode(obj.item(), camel=camel, _depth=d)
    if isinstance(obj, (set, frozenset)):
        return [encode(v, camel=camel, _depth=d) for v in sorted(obj, key=repr)]
    raise TypeError(
        f"{type(obj).__module__}.{type(obj).__qualname__} is not JSON serialisable; "
        "pass numbers, strings, lists, dicts or dataclasses"
    )


def _key(k: Any) -> str:
    if isinstance(k, str):
        return str(k)
    if k is None or isinstance(k, (bool, int)):
        return json.dumps(k)
    if isinstance(k, float):
        return json.dumps(k) if math.isfinite(k) else float_class(k)
    raise TypeError(f"JSON object keys must be strings or numbers, not {type(k).__name__}")


def dumps(obj: Any, *, camel: bool = False, indent: int | None = None) -> str:
    """Strict JSON text for `obj` (see `encode`); never contains ``NaN`` or ``Infinity``,
    and always encodes to UTF-8 (lone surrogates in strings are written as ``\\udcxx``)."""
    separators = (",", ":") if indent is None else None
    plain = encode(obj, camel=camel)
    text = json.dumps(
        plain, allow_nan=False, ensure_ascii=False, separators=separators, indent=indent
    )
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: escape it (\udcxx), which stays valid
            text = json.dumps(  # UTF-8 and reads back as the same string
                plain, allow_nan=False, ensure_ascii=True, separators=separators, indent=indent
            )
    return text


def _hook(d: dict[str, Any]) -> Any:
    if len(d) == 1:
        v = d.get(NONFINITE_KEY)
        if isinstance(v, str) and v in _NONFINITE:
            return _NONFINITE[v]
    return d


def decode(value: Any) -> Any:
    """An already parsed JSON value with every ``{"nonfinite": ...}`` marker turned back into
    a float (what `loads` does while parsing), for documents parsed elsewhere."""
    if isinstance(value, dict):
        marker = _hook(value)
        if marker is not value:
            return marker
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"not strict JSON: {name} literal")


def loads(s: str | bytes) -> Any:
    """Parse strict JSON, turning ``{"nonfinite": ...}`` markers back into floats.

    ``NaN``/``Infinity`` literals are rejected with `ValueError`.
    """
    return json.loads(s, object_hook=_hook, parse_constant=_reject_constant)


def camel(obj: Any) -> Any:
    """`encode(obj, camel=True)`: plain JSON values with camelCase keys."""
    return encode(obj, camel=True)
