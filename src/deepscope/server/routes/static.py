"""The built frontend: ``index.html`` for ``/`` and single-page-app paths, assets by name.

Every asset path goes through `deepscope.server.paths.confine` (the same validator as
blobs) and only allow-listed file types are served. When the frontend was not built, a
small plain page says how to get it.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

from deepscope.errors import NotFoundError
from deepscope.server.paths import confine
from deepscope.server.responses import error_response
from deepscope.server.state import app_state

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".wasm": "application/wasm",
    ".txt": "text/plain; charset=utf-8",
}
NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deepscope</title></head>
<body><h1>deepscope</h1>
<p>frontend not built: pip install deepscope from a release, or run
<code>npm ci &amp;&amp; npm run build</code> in <code>frontend/</code>.</p>
<p>The JSON API is up: <a href="/api/health">/api/health</a>.</p>
</body></html>
"""


def _index(static_dir: Path) -> Response:
    index = static_dir / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT, headers={"cache-control": "no-store"})
    return FileResponse(index, media_type=CONTENT_TYPES[".html"],
                        headers={"cache-control": "no-cache"})  # fmt: skip


def static(request: Request) -> Response:
    """Serve ``/`` and any non-API path from the built frontend."""
    static_dir = app_state(request).settings.static_dir
    path = request.path_params.get("path", "")
    if not path:
        return _index(static_dir)
    if path == "api" or path.startswith("api/"):
        return error_response(404, "NotFound", f"no API route /{path[:100]}; see docs/api.md")
    last = path.rsplit("/", 1)[-1]
    try:
        target = confine(static_dir, path)
    except NotFoundError:
        if "." not in last:  # a client-side route such as /scalars: the app handles it
            return _index(static_dir)
        raise
    kind = CONTENT_TYPES.get(target.suffix.lower())
    if kind is None or not target.is_file():
        raise NotFoundError(f"no file /{path[:100]}")
    cache = "public, max-age=31536000, immutable" if "/assets/" in f"/{path}" else "no-cache"
    return FileResponse(target, media_type=kind, headers={"cache-control": cache})


routes = [
    Route("/", static, methods=["GET"]),
    Route("/{path:path}", static, methods=["GET"]),
]
