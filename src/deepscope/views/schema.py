"""A tiny schema language: `TypedDict` classes are the wire schemas.

One declaration serves three readers: mypy (the server builds dicts of these types),
`validate` (a response or a logged payload checked at run time), and `typescript` (the
frontend's types, generated into ``frontend/src/wire/types.ts``). Supported annotations:
``str``, ``int``, ``float``, ``bool``, ``None``, ``Any``, ``list[X]``, ``tuple[X, Y]``
(fixed length), ``dict[str, X]``, ``X | Y``, ``Literal[...]``, ``NotRequired[X]`` and other
`TypedDict` classes. Objects are closed: a key the schema does not name is an error, so
a field added on one side only fails a test instead of drifting (`open_keys` marks a
TypedDict whose extra keys are free-form, as user-given meta is).

Example:
    >>> from typing import TypedDict
    >>> class Point(TypedDict):
    ...     x: int
    ...     label: str | None
    >>> validate({"x": 1, "label": None}, Point)
    >>> errors({"x": "1", "label": None}, Point)
    ["$.x: expected an integer, got str '1'"]
"""

from __future__ import annotations

import math
import sys
import types
import typing
from collections.abc import Iterable
from typing import Any, Literal, NotRequired, TypedDict, Union

from deepscope.errors import DeepscopeError

__all__ = ["NonFinite", "Number", "SchemaError", "errors", "open_keys", "typescript", "validate"]


class SchemaError(DeepscopeError):
    """A value does not match its wire schema (the message names the first wrong path)."""

    http_status = 500


class NonFinite(TypedDict):
    """A NaN or infinity in strict JSON (`deepscope.store.jsonenc`)."""

    nonfinite: Literal["nan", "+inf", "-inf"]


Number = Union[float, NonFinite]  # noqa: UP007  (a runtime value, not only an annotation)
"""A float that may be non-finite on the wire."""

_MAX_ERRORS = 20
_OPEN: set[type] = set()
_T = typing.TypeVar("_T", bound=type)


def open_keys(td: _T) -> _T:
    """Class decorator: `td` also accepts keys it does not name (values of any type);
    its named keys are still checked. TypeScript gets ``[key: string]: unknown``."""
    _OPEN.add(td)
    return td


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, dict) and hasattr(tp, "__total__")


def _hints(td: type) -> dict[str, Any]:
    module = sys.modules.get(td.__module__)
    return typing.get_type_hints(td, vars(module) if module else None, include_extras=True)


def _fields(td: type) -> list[tuple[str, Any, bool]]:
    """``(key, annotation, required)`` of a TypedDict, in declaration order."""
    required: frozenset[str] = getattr(td, "__required_keys__", frozenset())
    out = []
    for key, tp in _hints(td).items():
        optional = typing.get_origin(tp) is NotRequired  # string annotations hide it
        if optional:
            tp = typing.get_args(tp)[0]
        out.append((key, tp, key in required and not optional))
    return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check(value: Any, tp: Any, path: str, out: list[str]) -> None:  # noqa: C901, PLR0912
    if len(out) >= _MAX_ERRORS:
        return
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return
    if tp is None or tp is type(None):
        if value is not None:
            out.append(f"{path}: expected null, got {type(value).__name__}")
    elif tp is bool:
        if not isinstance(value, bool):
            out.append(f"{path}: expected a boolean, got {type(value).__name__} {_show(value)}")
    elif tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{path}: expected an integer, got {type(value).__name__} {_show(value)}")
    elif tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            out.append(f"{path}: expected a number, got {type(value).__name__} {_show(value)}")
        elif not math.isfinite(value):
            out.append(f"{path}: a non-finite number must travel as {{'nonfinite': ...}}")
    elif tp is str:
        if not isinstance(value, str):
            out.append(f"{path}: expected a string, got {type(value).__name__} {_show(value)}")
    elif origin is Literal:
        if not any(value == a and type(value) is type(a) for a in args):
            out.append(f"{path}: expected one of {list(args)}, got {_show(value)}")
    elif origin in (Union, types.UnionType):
        for option in args:
            trial: list[str] = []
            _check(value, option, path, trial)
            if not trial:
                return
        out.append(f"{path}: {_show(value)} matches none of {_ts(tp)}")
    elif origin is list:
        if not isinstance(value, list):
            out.append(f"{path}: expected a list, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _check(item, args[0], f"{path}[{i}]", out)
    elif origin is tuple:
        if not isinstance(value, list | tuple) or len(value) != len(args):
            out.append(f"{path}: expected a list of {len(args)} items, got {_show(value)}")
            return
        for i, (item, item_tp) in enumerate(zip(value, args, strict=True)):
            _check(item, item_tp, f"{path}[{i}]", out)
    elif origin is dict:
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object, got {type(value).__name__}")
            return
        for key, item in value.items():
            if not isinstance(key, str):
                out.append(f"{path}: object keys must be strings, got {_show(key)}")
            _check(item, args[1], f"{path}[{key!r}]", out)
    elif _is_typeddict(tp):
        if not isinstance(value, dict):
            out.append(f"{path}: expected a {tp.__name__} object, got {type(value).__name__}")
            return
        fields = _fields(tp)
        names = {k for k, _, _ in fields}
        for key in value:
            if key not in names and tp not in _OPEN:
                out.append(f"{path}: unexpected key {key!r} (not in {tp.__name__})")
        for key, field_tp, required in fields:
            if key in value:
                _check(value[key], field_tp, f"{path}.{key}", out)
            elif required:
                out.append(f"{path}: missing key {key!r} of {tp.__name__}")
    else:
        raise TypeError(f"the schema language has no rule for {tp!r}")


def errors(value: Any, schema: Any) -> list[str]:
    """Every mismatch of `value` against `schema` (at most 20), as ``path: what`` lines."""
    out: list[str] = []
    _check(value, schema, "$", out)
    return out


def validate(value: Any, schema: Any) -> None:
    """Raise `SchemaError` naming the first mismatches when `value` does not fit `schema`."""
    found = errors(value, schema)
    if found:
        name = getattr(schema, "__name__", str(schema))
        raise SchemaError(f"value does not match the {name} schema: " + "; ".join(found[:5]))


# ---- TypeScript


def _ts(tp: Any) -> str:  # noqa: PLR0911
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return "unknown"
    if tp is None or tp is type(None):
        return "null"
    if tp is bool:
        return "boolean"
    if tp in (int, float):
        return "number"
    if tp is str:
        return "string"
    if origin is Literal:
        return " | ".join(_literal(a) for a in args)
    if origin in (Union, types.UnionType):
        return " | ".join(_ts(a) for a in args)
    if origin is list:
        inner = _ts(args[0])
        return f"({inner})[]" if "|" in inner and inner[0] != "[" else f"{inner}[]"
    if origin is tuple:
        return "[" + ", ".join(_ts(a) for a in args) + "]"
    if origin is dict:
        return f"Record<string, {_ts(args[1])}>"
    if _is_typeddict(tp):
        return str(tp.__name__)
    raise TypeError(f"the schema language has no rule for {tp!r}")


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return repr(value)


def _reachable(roots: Iterable[Any]) -> list[type]:
    """Every TypedDict named by `roots`, dependencies first, each once."""
    seen: dict[type, None] = {}

    def walk(tp: Any) -> None:
        if tp is None:
            return
        if _is_typeddict(tp):
            if tp in seen:
                return
            for _, field_tp, _ in _fields(tp):
                walk(field_tp)
            seen[tp] = None
            return
        for arg in typing.get_args(tp):
            if not isinstance(arg, str | int | bool):
                walk(arg)

    for root in roots:
        walk(root)
    return list(seen)


def typescript(roots: Iterable[Any], header: str = "") -> str:
    """TypeScript ``export interface`` declarations for every TypedDict reachable from `roots`
    (a field's docstring is not carried; names must be unique)."""
    lines = [header] if header else []
    names: dict[str, type] = {}
    for td in _reachable(roots):
        if names.setdefault(td.__name__, td) is not td:
            raise TypeError(f"two wire schemas are both named {td.__name__}")
        doc = (td.__doc__ or "").strip().splitlines()
        if doc and not doc[0].startswith(f"{td.__name__}("):
            lines.append("/** " + doc[0].replace("``", "`") + " */")
        lines.append(f"export interface {td.__name__} {{")
        for key, field_tp, required in _fields(td):
            opt = "" if required else "?"
            lines.append(f"  {key}{opt}: {_ts(field_tp)};")
        if td in _OPEN:
            lines.append("  [key: string]: unknown;")
        lines.append("}")
        lines.append("")
    return "\n".join(lines) + "\n"
