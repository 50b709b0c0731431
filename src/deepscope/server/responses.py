"""Strict JSON responses and typed error bodies.

Every JSON body goes through `deepscope.store.jsonenc.dumps`: a non-finite float becomes
``{"nonfinite": "nan" | "+inf" | "-inf"}``, never a ``NaN`` literal.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.responses import JSONResponse, Response

from deepscope.errors import DeepscopeError
from deepscope.store.jsonenc import dumps

__all__ = ["StrictJSONResponse", "error_response", "exception_response"]

log = logging.getLogger("deepscope.server")


class StrictJSONResponse(JSONResponse):
    """A JSON response rendered by `jsonenc.dumps` (strict: no NaN/Infinity literals)."""

    def render(self, content: Any) -> bytes:
        return dumps(content).encode("utf-8")


def error_response(status: int, type_name: str, message: str) -> Response:
    """``{"error": {"type", "message"}}`` with `status`."""
    return StrictJSONResponse({"error": {"type": type_name, "message": message}}, status)


def exception_response(exc: BaseException) -> Response:
    """The response for an exception: typed errors keep their status and message; anything
    else is logged here and answered with a generic 500 (no stack trace to the client)."""
    if isinstance(exc, DeepscopeError):
        name = type(exc).__name__.removesuffix("Error") or "Error"
        return error_response(exc.http_status, name, str(exc))
    log.error("unexpected error while serving a request", exc_info=exc)
    return error_response(500, "Internal", "internal server error; see the server log")
