"""Query parameter parsing: validated, clamped, and typed errors (HTTP 400) otherwise."""

from __future__ import annotations

import re

from starlette.requests import Request

from deepscope.errors import DeepscopeError

__all__ = ["BadRequestError", "flag", "integer", "optional_integer", "text", "texts"]

MAX_TEXT = 1024
MAX_REPEAT = 100
MAX_INT = 2**62  # SQLite integers are 64-bit
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # ASCII digits only: no '--5', '+5', '1_0', '²'


class BadRequestError(DeepscopeError):
    """A query parameter is missing, malformed or out of range."""

    http_status = 400


def _clean(name: str, value: str) -> str:
    if len(value) > MAX_TEXT:
        raise BadRequestError(f"query parameter '{name}' is longer than {MAX_TEXT} characters")
    if "\x00" in value:
        raise BadRequestError(f"query parameter '{name}' contains a NUL byte")
    return value


def text(request: Request, name: str, default: str | None = None) -> str:
    """A required string parameter (or `default` when given and the parameter is absent)."""
    value = request.query_params.get(name)
    if value is None:
        if default is None:
            raise BadRequestError(f"query parameter '{name}' is required")
        return default
    return _clean(name, value)


def texts(request: Request, name: str, *, required: bool = True) -> list[str]:
    """A repeatable string parameter (``?run=a&run=b``), de-duplicated in order."""
    values = request.query_params.getlist(name)
    if not values and required:
        raise BadRequestError(f"query parameter '{name}' is required (repeat it for several)")
    if len(values) > MAX_REPEAT:
        raise BadRequestError(f"query parameter '{name}' is repeated more than {MAX_REPEAT} times")
    return list(dict.fromkeys(_clean(name, v) for v in values))


def optional_integer(request: Request, name: str) -> int | None:
    """An integer parameter, or None when absent; 400 when not an integer."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    raw = raw.strip()
    if _INTEGER.fullmatch(raw) is None:
        raise BadRequestError(f"query parameter '{name}' must be an integer, got {raw[:40]!r}")
    value = int(raw)
    if abs(value) > MAX_INT:
        raise BadRequestError(f"query parameter '{name}' is out of range (|value| > 2**62)")
    return value


def integer(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer in [minimum, maximum]: below the minimum is a 400, above is clamped."""
    value = optional_integer(request, name)
    if value is None:
        return default
    if value < minimum:
        raise BadRequestError(f"query parameter '{name}' must be at least {minimum}, got {value}")
    return min(value, maximum)


def flag(request: Request, name: str) -> bool:
    """A boolean parameter: ``1``/``true`` is true, absent/``0``/``false`` false, else 400."""
    raw = request.query_params.get(name, "0").lower()
    if raw in ("1", "true", "yes"):
        return True
    if raw in ("0", "false", "no", ""):
        return False
    raise BadRequestError(f"query parameter '{name}' must be 0 or 1, got {raw[:40]!r}")
