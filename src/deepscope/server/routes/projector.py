"""``/api/projector/*``: the Projector panel's embeddings, columns, sprites, projections
(computed by the worker of `deepscope.server.projector_worker`) and neighbours.

The server process never imports torch; only ``/neighbors`` needs numpy (501 with an
install hint without it). ``POST /project`` answers at once: a projection found in the
cache (the run's blob folder of a log directory; the table ``deepscope.projection`` of a
PostgreSQL store, `deepscope.store.postgres.projections`) is ``done``; otherwise the job is queued on the worker and its progress comes as
``event: projection`` on ``/api/stream``; ``/coords`` serves the result (or the latest
partial t-SNE layout with ``partial=1``) as a float32 array envelope.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from deepscope.analysis.projection import normalize
from deepscope.errors import DeepscopeError, NotFoundError, require
from deepscope.server import params
from deepscope.server.projector_worker import JobSpec, ProjectorManager, cache_path
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.routes.blobs import blob_file
from deepscope.server.state import AppState, ServedRun, app_state
from deepscope.store.protocol import BlobInfo
from deepscope.views import envelope
from deepscope.views.kinds.embedding import (
    BLOB_KIND,
    CHUNK_KIND,
    SPRITE_KIND,
)

__all__ = ["manager", "projection_events", "routes"]

MAX_BODY_FIELD = 1024
MAX_NEIGHBORS = 1000
MAX_EMBEDDINGS = 1000
_MANAGER_LOCK = threading.Lock()
_HEADERS = {"cache-control": "no-store", "x-content-type-options": "nosniff"}


def _state_value(app: Any, name: str) -> Any:
    """``app.state.<name>``, or None before it is set (no getattr in server code)."""
    try:
        return app.state._state.get(name)
    except AttributeError:
        return None


def manager(app: Any) -> ProjectorManager:
    """The app's projector manager (created on first use)."""
    with _MANAGER_LOCK:
        found: ProjectorManager | None = _state_value(app, "projector")
        if found is None:
            found = ProjectorManager()
            app.state.projector = found
        return found


def projection_events(app: Any, seq: int, runs: set[str]) -> tuple[int, list[dict[str, Any]]]:
    """SSE feed for ``/api/stream``: events after `seq` for `runs` (none before any job)."""
    found: ProjectorManager | None = _state_value(app, "projector")
    if found is None:
        return seq, []
    return found.events_since(seq, runs)


def _latest(blobs: list[BlobInfo]) -> dict[tuple[str, int], BlobInfo]:
    out: dict[tuple[str, int], BlobInfo] = {}
    for b in blobs:
        if isinstance(b.meta.get("n"), int) and isinstance(b.meta.get("dim"), int):
            out[(b.tag, b.step)] = b  # oldest first: the latest of a tag and step wins
    return out


def _embedding(reader: ServedRun, tag: str, step: int) -> BlobInfo:
    found = _latest(reader.blobs(BLOB_KIND, tag)).get((tag, step))
    if found is None:
        raise NotFoundError(f"run '{reader.name}' has no embedding {tag[:80]!r} at step {step}")
    return found


def _chunks(reader: ServedRun, main: BlobInfo) -> list[BlobInfo]:
    """The chunk blobs written with `main` (the latest of each index before it)."""
    count = int(main.meta.get("chunks", 0))
    best: dict[int, BlobInfo] = {}
    for b in reader.blobs(CHUNK_KIND, main.tag):
        i = b.meta.get("chunk")
        if b.step == main.step and isinstance(i, int) and b.id < main.id and 0 <= i < count:
            best[i] = b
    if len(best) != count:
        raise NotFoundError(f"embedding {main.tag[:80]!r} is missing {count - len(best)} chunks")
    return [best[i] for i in range(count)]


def embeddings(request: Request) -> Response:
    """``{"embeddings": [{"tag", "step", "n", "dim", "columns", "sprite", "nonfinite"}]}``."""
    run = params.text(request, "run")
    reader = app_state(request).run(run)
    rows = []
    for (tag, step), b in sorted(_latest(reader.blobs(BLOB_KIND)).items())[:MAX_EMBEDDINGS]:
        m = b.meta
        rows.append({"tag": tag, "step": step, "n": m["n"], "dim": m["dim"],
                     "columns": m.get("columns", []), "sprite": m.get("sprite"),
                     "nonfinite": int(m.get("nonfinite", 0))})  # fmt: skip
    return StrictJSONResponse({"embeddings": rows})


def _where(request: Request) -> tuple[str, str, int]:
    step = params.optional_integer(request, "step")
    return params.text(request, "run"), params.text(request, "tag"), step or 0


def columns(request: Request) -> Response:
    """``{"columns": [...]}`` exactly as logged (the blob is served as is: strict JSON)."""
    run, tag, step = _where(request)
    reader = app_state(request).run(run)
    path = blob_file(reader, _embedding(reader, tag, step))
    return FileResponse(path, media_type="application/json", headers=_HEADERS)


def sprite(request: Request) -> Response:
    """The thumbnail atlas (PNG) of an embedding; 404 when none was logged."""
    run, tag, step = _where(request)
    reader = app_state(request).run(run)
    main = _embedding(reader, tag, step)
    found = [b for b in reader.blobs(SPRITE_KIND, tag) if b.step == step and b.id < main.id]
    if main.meta.get("sprite") is None or not found:
        raise NotFoundError(f"embedding {tag[:80]!r} at step {step} has no thumbnails")
    return FileResponse(blob_file(reader, found[-1]), media_type="image/png", headers=_HEADERS)


def _key(
    run: str,
    main: BlobInfo,
    chunks: list[BlobInfo],
    method: str,
    dims: int,
    seed: int,
    p: dict[str, Any],
) -> str:
    """The projection's identity: the run, the embedding (its vectors' content hashes) and
    what determines the result (thread counts excluded)."""
    kept = {k: v for k, v in p.items() if k != "n_jobs"}
    data = [main.tag, main.step, [c.path for c in chunks]]
    ident = json.dumps([run, data, method, dims, seed, kept], sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:32]


def _stored(state: AppState, reader: ServedRun, key: str) -> tuple[Path | bytes, int] | None:
    """The cached result of projection `key` (its file, or its bytes from a database
    store, and its dropped-row count), if any."""
    if state.database:
        from deepscope.store.postgres.projections import cached_projection

        return cached_projection(state.store(), reader.name, key)
    path = cache_path(reader.directory, key)
    try:
        meta = json.loads(path.with_suffix(".json").read_bytes())
        if path.is_file() and not path.is_symlink():
            return path, int(meta.get("dropped", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return None


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as exc:
        raise params.BadRequestError(f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise params.BadRequestError("the request body must be a JSON object")
    return body


def _field(body: dict[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None or not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise params.BadRequestError(f"field {name!r} must be a {kind.__name__}")
    if isinstance(value, str) and (len(value) > MAX_BODY_FIELD or "\x00" in value):
        raise params.BadRequestError(f"field {name!r} is too long or holds NUL")
    return value


def _project(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    run, tag = _field(body, "run", str), _field(body, "tag", str)
    step, method = _field(body, "step", int, 0), _field(body, "method", str)
    dims = _field(body, "dims", int, 2)
    options = dict(_field(body, "params", dict, {}))
    seed = options.pop("seed", body.get("seed", 0))
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32:
        raise params.BadRequestError("seed must be an integer in [0, 2**32)")
    state = app_state(request)
    reader = state.run(run)
    main = _embedding(reader, tag, step)
    n, nonfinite = int(main.meta["n"]), int(main.meta.get("nonfinite", 0))
    opts = normalize(method, dims, options, n - nonfinite)
    chunks = _chunks(reader, main)
    key = _key(run, main, chunks, method, dims, seed, opts)
    work = manager(request.app)
    job = work.job(key)
    if job is not None and job.state in ("queued", "running", "done"):
        return job.answer()
    stored = _stored(state, reader, key)
    database = state.settings.store_url if state.database else None
    chunk_paths = [] if stored or database else [str(blob_file(reader, b)) for b in chunks]
    assert state.settings.logdir is not None
    spec = JobSpec(key=key, logdir=str(state.settings.logdir), run=run,
                   run_dir=str(reader.directory), tag=tag, step=step,
                   chunks=tuple(chunk_paths), n=n, dim=int(main.meta["dim"]), method=method,
                   dims=dims, seed=seed, params=opts, store=database or "",
                   blobs=tuple(chunks) if database else ())  # fmt: skip
    if stored is not None:
        data = stored[0] if isinstance(stored[0], bytes) else stored[0].read_bytes()
        envelope.read_header(data)
        return work.adopt(spec, data, stored[1]).answer()
    return work.submit(spec).answer()


async def project(request: Request) -> Response:
    """``POST {"run", "tag", "step", "method", "dims", "params"}`` ->
    ``{"key", "state", "progress"[, "message", "dropped"]}`` at once."""
    body = _body(await request.body())
    run = body.get("run")
    runs = [run] if isinstance(run, str) else []
    answer = await app_state(request).gate.call(runs, _project, request, body)
    return StrictJSONResponse(answer)


async def cancel(request: Request) -> Response:
    """``POST {"run", "key"}`` -> ``{"cancelled": bool}``."""
    body = _body(await request.body())
    run, key = _field(body, "run", str), _field(body, "key", str)
    job = manager(request.app).job(key)
    ok = job is not None and job.spec.run == run and manager(request.app).cancel(key)
    return StrictJSONResponse({"cancelled": bool(ok)})


def coords(request: Request) -> Response:
    """The coordinates of projection ``key`` as a float32 N x dims envelope (``partial=1``:
    the latest partial layout while it runs); 404 until there is one."""
    run, key = params.text(request, "run"), params.text(request, "key")
    partial = params.flag(request, "partial")
    job = manager(request.app).job(key)
    if job is not None and job.spec.run == run:
        data = job.result or (job.partial if partial else None)
        if data is not None:
            return Response(data, media_type=envelope.CONTENT_TYPE, headers=_HEADERS)
        if job.state in ("queued", "running"):
            raise NotFoundError(f"projection {key[:40]} is {job.state} ({job.progress:.0%})")
        if job.state == "error":
            raise DeepscopeError(job.message or "the projection failed")
    state = app_state(request)
    reader = state.run(run)
    stored = _stored(state, reader, key) if key.isalnum() else None
    if stored is None:
        raise NotFoundError(f"run '{run}' has no projection {key[:40]!r}")
    if isinstance(stored[0], bytes):
        return Response(stored[0], media_type=envelope.CONTENT_TYPE, headers=_HEADERS)
    return FileResponse(stored[0], media_type=envelope.CONTENT_TYPE, headers=_HEADERS)


class _Matrices:
    """The last few embedding matrices read for ``/neighbors`` (by their main blob)."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self.items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, reader: ServedRun, main: BlobInfo) -> Any:
        import numpy as np

        chunks = _chunks(reader, main)
        key = (reader.name, "|".join(b.path for b in chunks))
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        parts = [envelope.decode(blob_file(reader, b).read_bytes()) for b in chunks]
        x = np.concatenate(parts) if len(parts) > 1 else parts[0]
        with self.lock:
            self.items[key] = x
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return x


def neighbors(request: Request) -> Response:
    """``{"index", "neighbors": [{"index", "distance"}]}``: the ``k`` nearest points to
    ``index`` in the original space (``metric`` cosine or euclidean), exact."""
    require("numpy", "arrays")
    from deepscope.analysis.projection import nearest

    run, tag, step = _where(request)
    index = params.integer(request, "index", default=-1, minimum=0, maximum=2**31)
    k = params.integer(request, "k", default=10, minimum=1, maximum=MAX_NEIGHBORS)
    metric = params.text(request, "metric", "cosine")
    if metric not in ("cosine", "euclidean"):
        raise params.BadRequestError("metric is 'cosine' or 'euclidean'")
    reader = app_state(request).run(run)
    main = _embedding(reader, tag, step)
    with _MANAGER_LOCK:
        cache = _state_value(request.app, "projector_matrices")
        if cache is None:
            cache = request.app.state.projector_matrices = _Matrices()
    x = cache.get(reader, main)
    found = nearest(x, index, k, metric)  # type: ignore[arg-type]
    rows = [{"index": i, "distance": d} for i, d in found]
    return StrictJSONResponse({"index": index, "neighbors": rows})


routes = [
    Route("/api/projector/embeddings", embeddings, methods=["GET"]),
    Route("/api/projector/columns", columns, methods=["GET"]),
    Route("/api/projector/sprite", sprite, methods=["GET"]),
    Route("/api/projector/project", project, methods=["POST"]),
    Route("/api/projector/cancel", cancel, methods=["POST"]),
    Route("/api/projector/coords", coords, methods=["GET"]),
    Route("/api/projector/neighbors", neighbors, methods=["GET"]),
]
