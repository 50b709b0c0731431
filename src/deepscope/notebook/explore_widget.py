"""The explore workbench inline in a notebook: an anywidget that proxies the dashboard API.

A notebook cannot frame the workbench server (every HTML page of it sends
``frame-ancestors 'self'``, THREATS D3) and, with a remote kernel, cannot reach it at all.
`ExploreWidget` therefore draws the workbench's own components in the notebook page (the
widget bundle, ``frontend/src/entries/explore.tsx``) and carries their ``api/...`` requests
over the widget's comm channel (``frontend/src/entries/comm.ts``): a message
``{"kind": "deepscope-api", "id", "method", "path", "body"}`` is checked here (`checked_path`:
GET/POST, a path in `ALLOWED_ROUTES`, no scheme, host, ``..`` or escapes; THREATS D7) and
asked of the explore server over HTTP on loopback with its token, so the server's own
routes, cache and job queue answer it (one computation path). The reply is
``{"kind", "id", "status", "headers": {"content-type"}}`` with the body as one binary
buffer. Requests run on a small thread pool, so a slow view never holds up a click or the
kernel; a ``{"cancel": id}`` message closes that request's connection, which the server
sees as the client leaving (the job is released).
"""

from __future__ import annotations

import html
import http.client
import json
import re
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from deepscope.errors import DeepscopeError, require
from deepscope.views import embed

__all__ = ["ALLOWED_ROUTES", "ApiProxy", "ExploreWidget", "checked_path"]

require("anywidget", "notebook")

import anywidget  # noqa: E402
import traitlets  # noqa: E402

KIND = "deepscope-api"

#: The API routes the explore view uses (``/api/<route>``); nothing else is proxied.
ALLOWED_ROUTES = frozenset(
    {
        "health",
        "runs",
        "graph",
        "graph/level",
        "graph/search",
        "model/weights",
        "model/weights/array",
        "model/weights/table",
        "workbench",
        "workbench/input",
        "workbench/jobs",
        "workbench/part",
        "workbench/tabs",
        "workbench/view",
    }
)
METHODS = frozenset({"GET", "POST"})
MAX_PATH = 8192
MAX_BODY = 1 << 20
_ROUTE = re.compile(r"api/([a-z]+(?:/[a-z]+)*)")
_TIMEOUT_S = 600.0


def checked_path(path: object) -> str:
    """``/api/<route>?<query>`` for a request path ``api/<route>?<query>`` of the explore
    view, with the query re-encoded; a `DeepscopeError` for anything else (another route,
    an absolute URL, ``..``, percent-escapes or control characters in the route)."""
    if not isinstance(path, str) or len(path) > MAX_PATH:
        raise DeepscopeError("a request path must be a string of at most 8 KiB")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        raise DeepscopeError("a request path must not hold control characters")
    route, _, query = path.partition("?")
    match = _ROUTE.fullmatch(route)
    if match is None or match.group(1) not in ALLOWED_ROUTES:
        raise DeepscopeError(f"not an explore API route: {route[:80]!r}")
    params = parse_qsl(query, keep_blank_values=True)
    return f"/{route}" + (f"?{urlencode(params)}" if params else "")


class ApiProxy:
    """Answers checked API requests by asking the explore server at `url` (its address as
    `Explorer.url` gives it, with ``?token=`` when it has one) over HTTP."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise DeepscopeError(f"the explore server URL must be http://host:port/, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        token = dict(parse_qsl(parts.query)).get("token")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._open: dict[int, http.client.HTTPConnection] = {}
        self._lock = threading.Lock()

    def request(
        self, method: object, path: object, body: object = None, *, rid: int | None = None
    ) -> tuple[int, str, bytes]:
        """(status, content type, body) of one request; a refused one is a 403/405/413
        JSON error, as the server writes them."""
        if method not in METHODS:
            return _error(405, "MethodNotAllowed", "only GET and POST are proxied")
        try:
            target = checked_path(path)
        except DeepscopeError as e:
            return _error(403, "Forbidden", str(e))
        data = body.encode("utf-8") if isinstance(body, str) and method == "POST" else None
        if data is not None and len(data) > MAX_BODY:
            return _error(413, "TooLarge", "a request body is limited to 1 MiB")
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        conn = http.client.HTTPConnection(self.host, self.port, timeout=_TIMEOUT_S)
        if rid is not None:
            with self._lock:
                self._open[rid] = conn
        try:
            conn.request(str(method), target, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.getheader("content-type", ""), payload
        except OSError as e:
            return _error(502, "Unreachable", f"the explore server did not answer ({e})")
        finally:
            if rid is not None:
                with self._lock:
                    self._open.pop(rid, None)
            conn.close()

    def cancel(self, rid: int) -> None:
        """Drop request `rid`'s connection (the server releases its job)."""
        with self._lock:
            conn = self._open.pop(rid, None)
        if conn is not None and conn.sock is not None:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _error(status: int, kind: str, message: str) -> tuple[int, str, bytes]:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode("utf-8")
    return status, "application/json", body


class ExploreWidget(anywidget.AnyWidget):  # type: ignore[misc]
    """The workbench of a running `deepscope.explore` server, drawn in the notebook; its API
    requests travel over this widget's comm channel to `ApiProxy`."""

    _esm = embed.widget_esm_path()
    explore = traitlets.Bool(True).tag(sync=True)
    height = traitlets.Int(760).tag(sync=True)

    def __init__(self, url: str, *, height: int = 760, workers: int = 8) -> None:
        super().__init__(height=height)
        self.url = url
        self.proxy = ApiProxy(url)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deepscope-widget")
        self.on_msg(self._on_msg)

    def _on_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("kind") != KIND:
            return
        if isinstance(content.get("cancel"), int):
            self.proxy.cancel(content["cancel"])
            return
        rid = content.get("id")
        if not isinstance(rid, int):
            return
        self._pool.submit(self._answer, rid, content)

    def _answer(self, rid: int, content: dict[str, Any]) -> None:
        status, ctype, body = self.proxy.request(
            content.get("method"), content.get("path"), content.get("body"), rid=rid
        )
        reply = {"kind": KIND, "id": rid, "status": status, "headers": {"content-type": ctype}}
        self.send(reply, buffers=[body])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        bundle = super()._repr_mimebundle_(**kwargs)
        data, meta = bundle if isinstance(bundle, tuple) else (bundle, {})
        data = dict(data or {})
        data["text/html"] = link_html(self.url)
        data["text/plain"] = f"deepscope workbench at {self.url}"
        return data, meta

    def close(self) -> None:
        """Close the widget and stop its request workers."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().close()


def link_html(url: str) -> str:
    """The static fallback: a link to the workbench (nbconvert, a viewer without widgets)."""
    href = html.escape(url, quote=True)
    return (
        f'<div><a href="{href}" target="_blank" rel="noopener">deepscope workbench: {href}</a>'
        "</div>"
    )
