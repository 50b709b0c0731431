"""Security defaults as one pure ASGI middleware (docs/threats.md D1-D3, D6).

Pure ASGI (not `BaseHTTPMiddleware`) so server-sent event streams pass through unbuffered.
In order, for every HTTP request:

1. the ``Host`` header must name an allowed host (DNS rebinding) -> 403, even with a token;
2. the query string and the declared body are size-capped -> 414 / 413 before buffering;
3. a non-GET request with a foreign ``Origin`` -> 403 (CSRF);
4. with a token set, ``Authorization: Bearer <token>`` or the ``deepscope_token`` cookie
   must match (constant-time) -> 401; ``/?token=...`` sets the cookie and redirects to
   ``/`` so the token leaves the address bar;
5. every response, errors included, gets CSP, nosniff, frame and referrer headers, and
   never a CORS header.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Iterable
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from deepscope.server.responses import error_response, exception_response

__all__ = [
    "COOKIE",
    "BodyTimeout",
    "BodyTooLarge",
    "CSP",
    "SECURITY_HEADERS",
    "SecurityMiddleware",
    "host_name",
]

COOKIE = "deepscope_token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'self'; object-src 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
_SAFE_METHODS = frozenset({"GET", "HEAD"})


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the cap (any app layer maps it
    to 413, since it is an `HTTPException`)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes is refused")


class BodyTimeout(HTTPException):
    """Raised from `receive` when a request body has not fully arrived within its deadline
    (a slow-body client holding a connection and a handler; docs/threats.md D8)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body not received within {seconds:g} s")


def host_name(host_header: str) -> str:
    """The host part of a ``Host`` header, lower case: ``[::1]:6100`` -> ``::1``."""
    value = host_header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in scope.get("headers", []):
        name = key.decode("latin-1").lower()
        if name not in out:  # first wins: a duplicated Host header cannot sneak past
            out[name] = value.decode("latin-1")
    return out


def _bearer(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _cookie(headers: dict[str, str]) -> str | None:
    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # noqa: BLE001 - a malformed Cookie header is just "no cookie"
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None


def _same(given: str | None, token: str) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8"), token.encode("utf-8"))


class SecurityMiddleware:
    """Host allow-list, size caps, Origin check, token auth and security headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_hosts: Iterable[str],
        max_body: int,
        max_query: int,
        body_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.token = token
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.max_body = max_body
        self.max_query = max_query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        started = False
        late: list[bool] = []  # set by `capped` when the body missed its deadline

        async def send_secure(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                if late:  # the rest of the body may still come: never reuse the connection
                    headers["connection"] = "close"
                for name in list(headers.keys()):
                    if name.startswith("access-control-"):
                        del headers[name]
                for name, value in SECURITY_HEADERS:
                    headers[name] = value
            await send(message)

        if scope["type"] != "http":  # websockets: none are served; refuse outright
            await send({"type": "websocket.close", "code": 1008})
            return
        refusal = self._check(scope)
        if refusal is not None:
            await refusal(scope, receive, send_secure)
            return
        try:
            await self.app(scope, self._capped(receive, late), send_secure)
        except BodyTooLarge:
            if not started:
                await self._too_large()(scope, receive, send_secure)
        except BodyTimeout as exc:
            if not started:
                await error_response(408, "RequestTimeout", exc.detail)(scope, receive, send_secure)
        except Exception as exc:  # noqa: BLE001 - last line: no stack trace to the client
            if not started:
                await exception_response(exc)(scope, receive, send_secure)

    def _too_large(self) -> Response:
        return error_response(
            413, "PayloadTooLarge", f"request body over {self.max_body} bytes is refused"
        )

    def _check(self, scope: Scope) -> Response | None:
        headers = _headers(scope)
        if host_name(headers.get("host", "")) not in self.allowed_hosts:
            return error_response(
                403,
                "Forbidden",
                "unknown Host header; open the dashboard by the address it printed "
                "(or start it with --allowed-host NAME)",
            )
        query = scope.get("query_string", b"")
        if len(query) > self.max_query:
            return error_response(414, "URITooLong", f"query string over {self.max_query} bytes")
        length = headers.get("content-length")
        if length is not None and (
            not (length.isascii() and length.isdigit()) or int(length) > self.max_body
        ):
            return self._too_large()
        method = scope.get("method", "GET")
        origin = headers.get("origin")
        if method not in _SAFE_METHODS and origin is not None:
            if urlsplit(origin).netloc.lower() != headers.get("host", "").lower():
                return error_response(403, "Forbidden", "cross-origin request refused")
        if self.token is None:
            return None
        if _same(_bearer(headers), self.token) or _same(_cookie(headers), self.token):
            return None
        if scope.get("path") == "/" and method in _SAFE_METHODS:
            given = dict(parse_qsl(query.decode("latin-1"))).get("token")
            if _same(given, self.token):
                return self._login()
        return error_response(
            401,
            "Unauthorized",
            "this dashboard needs its token: open the URL with ?token=... that "
            "`deepscope serve` printed, or send 'Authorization: Bearer <token>'",
        )

    def _login(self) -> Response:
        response = RedirectResponse("/", status_code=303)
        assert self.token is not None
        response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict", path="/")
        response.headers["cache-control"] = "no-store"
        return response

    def _capped(self, receive: Receive, late: list[bool]) -> Receive:
        """`receive` with the body capped at `max_body` bytes and due, whole, within
        `body_timeout` seconds of the first read (an absolute deadline: trickling does not
        extend it). Once the body is complete, later reads (an SSE handler waiting for the
        disconnect) are not bounded."""
        seen = 0
        limit = self.max_body
        timeout = self.body_timeout
        deadline: float | None = None
        body_done = False

        async def capped() -> Message:
            nonlocal seen, deadline, body_done
            if body_done:
                return await receive()
            loop = asyncio.get_running_loop()
            if deadline is None:
                deadline = loop.time() + timeout
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                late.append(True)
                raise BodyTimeout(timeout) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        return capped
