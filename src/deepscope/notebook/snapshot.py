"""A snapshot of the dashboard API for a log directory or a model, recorded through the
server itself: the report (`deepscope report`) and `run.show()` draw it offline.

`record` asks the dashboard app (`deepscope.server.create_app`, called in process: no
socket, no thread of ours) the base questions the panels ask, one run and tag at a time,
and keeps the answers by `embed.request_key` with every blob they name inlined as a
``data:`` URL (`embed.Snapshot`). The page answers zoomed or filtered requests from them
(``frontend/src/entries/offline.ts``). View kinds come from ``/api/views`` (the registry),
so a kind registered later is recorded with no change here.

Size is bounded by `Limits`: scalars are downsampled on the server (min/max buckets that
keep the first, last and extreme points: zooming in shows those points, not the raw ones),
histograms subsampled, the latest images per tag kept, arrays downsampled by their kind's
hook, and blobs past `Limits.max_blob_bytes` left out (the items that need them too); what
was left out is listed in `Recorded.notes`.

Example:
    >>> rec = snapshot_logdir("runs", runs=["mnist*"])  # doctest: +SKIP
    >>> Path("r.html").write_text(embed.report_html(rec.snapshot))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import fnmatch
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from deepscope.errors import DeepscopeError
from deepscope.views import envelope
from deepscope.views.embed import Snapshot, blob_key, request_key

__all__ = [
    "Limits", "Recorded", "record", "search_index", "snapshot_logdir", "snapshot_model",
    "sprite_blob_id", "vectors_blob_id",
]  # fmt: skip

Params = list[tuple[str, str]]
_TYPES = {"image/png": "png", "application/json": "json"}


@dataclass(frozen=True)
class Limits:
    """How much a snapshot keeps (defaults keep the demo's report under 5 MB)."""

    max_points: int = 2000
    """Scalar points per run and tag (the server's min/max downsampling)."""
    max_histograms: int = 60
    """Histogram steps per run and tag."""
    images_per_tag: int = 8
    """The latest images per run and tag."""
    texts_per_tag: int = 50
    """The latest texts per run and tag."""
    items_per_kind: int = 1000
    """The latest view items per run and kind."""
    array_max_size: int = 256
    """Array parts downsampled by their kind's hook to this many cells per side."""
    max_graph_levels: int = 2000
    """Graph namespaces recorded per graph (the explorer opens any of them)."""
    max_blob_bytes: int = 4 * 1024 * 1024
    """Blob bytes inlined in all (before base64); later blobs are left out and noted."""
    max_projector_points: int = 50_000
    """Embeddings with more points are left out of the Projector (and noted)."""
    max_sprite_bytes: int = 2 * 1024 * 1024
    """An embedding's sprite atlas (PNG) larger than this is left out: no hover thumbnails."""
    max_vector_bytes: int = 2 * 1024 * 1024
    """An embedding's vectors (N x D as stored: float16 or float32) larger than this are
    left out: no nearest neighbours (2 MiB: 16k points of 64 float16s, 4k of 128 float32s)."""


@dataclass
class Recorded:
    """A recorded `snapshot`, its blob bytes and what was left out (`notes`)."""

    snapshot: Snapshot
    blob_bytes: int = 0
    notes: list[str] = field(default_factory=list)


class _Client:
    """GET requests to an ASGI app in process (the recorder's only way in)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def get(self, path: str, params: Params) -> tuple[int, str, bytes]:
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": f"/api/{path}",
            "raw_path": f"/api/{path}".encode(), "root_path": "",
            "query_string": urlencode(params).encode(),
            "headers": [(b"host", b"127.0.0.1")],
            "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        }  # fmt: skip
        status = 0
        ctype = ""
        body: list[bytes] = []

        import anyio

        sent = False
        done = anyio.Event()

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:  # the (empty) request body, then nothing until the answer is out
                sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status, ctype
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        ctype = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                body.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    done.set()

        await self.app(scope, receive, send)
        return status, ctype, b"".join(body)


class _Recorder:
    def __init__(self, app: Any, limits: Limits, tags: Sequence[str] | None) -> None:
        self.client = _Client(app)
        self.limits = limits
        self.tag_globs = list(tags) if tags else None
        self.answers: dict[str, Any] = {}
        self.blobs: dict[str, str] = {}
        self.blob_bytes = 0
        self.notes: list[str] = []
        self.left_out = 0

    def keep_tag(self, tag: str) -> bool:
        return self.tag_globs is None or any(fnmatch.fnmatchcase(tag, g) for g in self.tag_globs)

    async def json(self, path: str, params: Params, *, key: Params | None = None) -> Any:
        """GET `path` and keep its answer under the base request `key` (default `params`)."""
        status, _, body = await self.client.get(path, params)
        if status != 200:
            message = body[:300].decode("utf-8", "replace")
            raise DeepscopeError(f"recording /api/{path} failed ({status}): {message}")
        value = json.loads(body)
        self.answers[request_key(path, params if key is None else key)] = value
        return value

    async def blob(
        self, run: str, blob_id: int, path: str = "blob", extra: Params | None = None
    ) -> bool:
        """Inline blob `blob_id` of `run` (through `path`); False when it is left out."""
        bkey = blob_key(run, blob_id)
        if bkey in self.blobs:
            return True
        status, ctype, body = await self.client.get(
            path, [("run", run), ("id", str(blob_id)), *(extra or [])]
        )
        if status != 200:
            self.notes.append(f"blob {blob_id} of run {run!r}: HTTP {status}")
            return False
        if self.blob_bytes + len(body) > self.limits.max_blob_bytes:
            self.left_out += 1
            return False
        self.blob_bytes += len(body)
        mime = ctype.split(";")[0].strip() or "application/octet-stream"
        self.blobs[bkey] = f"data:{mime};base64," + base64.b64encode(body).decode("ascii")
        return True

    async def run(self, run: str) -> None:
        lim = self.limits
        r = [("run", run)]
        tags = (await self.json("tags", r))["tags"]
        kept = [t for t in tags if t["kind"] == "graph" or self.keep_tag(t["tag"])]
        self.answers[request_key("tags", r)] = {"tags": kept}
        by_kind: dict[str, list[str]] = {}
        for t in kept:
            by_kind.setdefault(t["kind"], []).append(t["tag"])
        for tag in by_kind.get("scalar", []):
            await self.json("scalars", [*r, ("tag", tag), ("maxPoints", str(lim.max_points))],
                            key=[*r, ("tag", tag)])  # fmt: skip
        for tag in by_kind.get("histogram", []):
            await self.json("histograms", [*r, ("tag", tag), ("maxPoints", str(lim.max_histograms))],
                            key=[*r, ("tag", tag)])  # fmt: skip
        for tag in by_kind.get("image", []):
            key = [*r, ("tag", tag)]
            images = await self.json("images", [*key, ("limit", str(lim.images_per_tag))], key=key)
            images["images"] = [i for i in images["images"] if await self.blob(run, i["id"])]
        for tag in by_kind.get("text", []):
            await self.json("text", [*r, ("tag", tag), ("limit", str(lim.texts_per_tag))],
                            key=[*r, ("tag", tag)])  # fmt: skip
        await self.json("events", [*r, ("limit", "1000")], key=r)
        await self.views(run, set(by_kind))
        await self.projector(run)
        if "graph" in by_kind:
            await self.graphs(run)

    async def views(self, run: str, kinds_logged: set[str]) -> None:
        r = [("run", run)]
        listed = self.answers.get(request_key("views", [])) or await self.json("views", [])
        for row in listed["kinds"]:
            kind = row["kind"]
            if kind not in kinds_logged:  # panels ask every run for their kind: none here
                empty = {"kind": kind, "run": run, "items": [], "skipped": 0}
                self.answers[request_key(f"views/{kind}", r)] = empty
                continue
            path = f"views/{kind}"
            view = await self.json(path, [*r, ("limit", str(self.limits.items_per_kind))], key=r)
            kept = []
            for item in view["items"]:
                if not self.keep_tag(item["tag"]) or not await self.blob(run, item["id"]):
                    continue
                for name, ref in item["parts"].items():
                    if ref is None:
                        continue
                    if ref["encoding"] == "array":
                        ok = await self.blob(run, ref["id"], f"{path}/array",
                                             [("maxSize", str(self.limits.array_max_size))])  # fmt: skip
                    else:
                        ok = await self.blob(run, ref["id"])
                    if not ok:
                        item["parts"][name] = None
                kept.append(item)
            view["items"] = kept
            if kind == "attribution":  # the older route some pages still read
                answer = await self.json("attributions", [*r, ("limit", "1000")], key=r)
                ids = {i["id"] for i in kept}
                answer["items"] = [i for i in answer["items"] if i["id"] in ids]

    async def projector(self, run: str) -> None:
        """Each embedding's columns and a 2-D PCA (computed here from the stored vectors),
        kept as the answers of ``POST projector/project`` and ``projector/coords``: the
        panel's default view draws offline (t-SNE, UMAP and 3-D answer an error there).
        Its sprite atlas (hover thumbnails) and its vectors as stored (the page computes
        nearest neighbours from them, exactly as ``/projector/neighbors``) come along when
        each is within `Limits.max_sprite_bytes` / `Limits.max_vector_bytes` and the blob
        budget; else the listing says ``sprite: null`` / the page says neighbours are not
        in the report, and a note names what was left out."""
        r = [("run", run)]
        status, _, body = await self.client.get("projector/embeddings", r)
        if status != 200:
            return
        listing = json.loads(body)
        kept: list[dict[str, Any]] = []
        for row in listing["embeddings"]:
            tag, step, n = row["tag"], int(row["step"]), int(row["n"])
            where = [*r, ("step", str(step)), ("tag", tag)]
            what = f"embedding {tag!r} (step {step}) of run {run!r}"
            if n > self.limits.max_projector_points:
                self.notes.append(f"{what}: {n} points, over "
                                  f"{self.limits.max_projector_points}: not in the Projector")  # fmt: skip
                continue
            status, _, cols = await self.client.get("projector/columns", where)
            x = _matrix(self.client.app, run, tag, step)
            coords = _pca_envelope(x)
            size = len(cols) + len(coords)
            if status != 200 or self.blob_bytes + size > self.limits.max_blob_bytes:
                self.left_out += 1
                continue
            self.blob_bytes += size
            self.answers[request_key("projector/columns", where)] = json.loads(cols)
            key = f"report-pca-{step}-{len(kept)}"
            self.blobs[blob_key(run, f"projector:{key}")] = _data_url(envelope.CONTENT_TYPE, coords)
            project = [*where, ("dims", "2"), ("method", "pca")]
            self.answers[request_key("projector/project", project)] = {
                "key": key, "state": "done", "progress": 1.0,
            }  # fmt: skip
            if row.get("sprite") is not None and not await self.projector_sprite(
                run, tag, step, what
            ):
                row = {**row, "sprite": None}  # the panel then asks for no thumbnails
            vectors = envelope.encode(x)
            if self._fits(len(vectors), self.limits.max_vector_bytes, f"{what}: its vectors "
                          "(for nearest neighbours)"):  # fmt: skip
                self.blobs[blob_key(run, vectors_blob_id(tag, step))] = _data_url(
                    envelope.CONTENT_TYPE, vectors
                )
            kept.append(row)
        listing["embeddings"] = kept
        self.answers[request_key("projector/embeddings", r)] = listing

    def _fits(self, size: int, cap: int, what: str) -> bool:
        """Count `size` bytes against `cap` and the blob budget; note `what` when over."""
        if size > cap:
            self.notes.append(f"{what} take {size} bytes, over {cap}: not in the report")
            return False
        if self.blob_bytes + size > self.limits.max_blob_bytes:
            self.left_out += 1
            return False
        self.blob_bytes += size
        return True

    async def projector_sprite(self, run: str, tag: str, step: int, what: str) -> bool:
        """Inline an embedding's sprite atlas (PNG) for the hover thumbnails."""
        where = [("run", run), ("step", str(step)), ("tag", tag)]
        status, ctype, png = await self.client.get("projector/sprite", where)
        if status != 200:
            return False
        if not self._fits(len(png), self.limits.max_sprite_bytes, f"{what}: its thumbnails"):
            return False
        mime = ctype.split(";")[0].strip() or "image/png"
        self.blobs[blob_key(run, sprite_blob_id(tag, step))] = _data_url(mime, png)
        return True

    async def graphs(self, run: str) -> None:
        r = [("run", run)]
        for g in (await self.json("graphs", r))["graphs"]:
            await self.graph_levels([*r, ("tag", g["tag"])])

    async def graph_levels(self, source: Params) -> None:
        """Every namespace's level of one graph (breadth first, up to the limit) and the
        search index the page filters (``graph/search``)."""
        todo = [""]
        levels: dict[str, Any] = {}
        while todo:
            if len(levels) >= self.limits.max_graph_levels:
                self.notes.append(f"graph {source}: only {self.limits.max_graph_levels} namespaces")
                break
            ns = todo.pop(0)
            level = await self.json("graph/level", [*source, ("namespace", ns)])
            levels[ns] = level
            for node in level.get("nodes", []):
                child = str(node.get("namespace") or "")
                if (
                    node.get("kind") == "group"
                    and child
                    and child not in levels
                    and child not in todo
                ):
                    todo.append(child)
        self.answers[request_key("graph/search", source)] = search_index(levels)


def sprite_blob_id(tag: str, step: int) -> str:
    """The blob id of an embedding's sprite atlas in a snapshot (``spriteUrl`` in
    ``frontend/src/panels/projector/api.ts`` asks the page's blob resolver for it)."""
    return f"projector:sprite:{step}:{tag}"


def vectors_blob_id(tag: str, step: int) -> str:
    """The blob id of an embedding's vectors (an array envelope) in a snapshot
    (``frontend/src/entries/offline.ts`` answers ``projector/neighbors`` from them)."""
    return f"projector:vectors:{step}:{tag}"


def _data_url(mime: str, data: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _matrix(app: Any, run: str, tag: str, step: int) -> Any:
    """An embedding's stored vectors (N x D, float16 or float32 as logged)."""
    import numpy as np

    from deepscope.server.routes.blobs import blob_file
    from deepscope.server.routes.projector import _chunks, _embedding

    reader = app.state.deepscope.run(run)
    main = _embedding(reader, tag, step)
    parts = [envelope.decode(blob_file(reader, b).read_bytes()) for b in _chunks(reader, main)]
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _pca_envelope(x: Any) -> bytes:
    """The 2-D PCA of `x` as the float32 envelope ``/coords`` serves (NaN rows where the
    input had NaN/Inf)."""
    import numpy as np

    from deepscope.analysis.projection import project

    coords = project(x, "pca", 2).coords
    return envelope.encode(np.ascontiguousarray(coords, dtype=np.float32))


def search_index(levels: dict[str, Any]) -> dict[str, Any]:
    """What ``graph/search`` filters in the page, from a graph's levels by namespace: groups
    (matched on namespace and module type) first, then ops (on id, label and op), each with
    the lower-cased `text` it is matched on (`GraphIndex.search`'s rules)."""
    groups: list[dict[str, Any]] = []
    ops: list[dict[str, Any]] = []
    for ns, level in levels.items():
        for node in level.get("nodes", []):
            if node.get("kind") == "group":
                child = str(node.get("namespace") or "")
                mtype = node.get("moduleType") or ""
                groups.append({"id": node["id"], "label": child.rsplit("/", 1)[-1],
                               "op": mtype or "group", "namespace": child, "kind": "group",
                               "text": f"{child}\n{mtype}".lower()})  # fmt: skip
            else:
                label = node.get("label") or ""
                ops.append({"id": node["id"], "label": label or node["id"], "op": node.get("op"),
                            "namespace": ns, "kind": "op",
                            "text": f"{node['id']}\n{label}\n{node.get('op')}".lower()})  # fmt: skip
    return {"matches": groups + ops}


def _pick(names: Iterable[str], globs: Sequence[str] | None) -> list[str]:
    names = list(names)
    if not globs:
        return names
    picked = [n for n in names if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    if not picked:
        raise DeepscopeError(f"no run matches {list(globs)}; runs: {names[:20]}")
    return picked


def record(
    app: Any,
    *,
    runs: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    limits: Limits | None = None,
    model: bool = False,
) -> Recorded:
    """Record `app`'s answers for the runs matching `runs` (globs; default all) and the tags
    matching `tags` (globs; graphs are always kept), or for its served model (`model`)."""
    import anyio

    rec = _Recorder(app, limits or Limits(), tags)

    async def main() -> list[str]:
        await rec.json("health", [])
        listing = await rec.json("runs", [("limit", "1000")], key=[])
        chosen = [] if model else _pick([row["name"] for row in listing["runs"]], runs)
        listing["runs"] = [row for row in listing["runs"] if row["name"] in chosen]
        listing["total"] = len(listing["runs"])
        await rec.json("views", [])
        for name in chosen:
            await rec.run(name)
        if model:
            await rec.graph_levels([("model", "1")])
        return chosen

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        chosen = anyio.run(main)
    else:  # a notebook kernel's loop runs in this thread: record on a thread of its own
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            chosen = pool.submit(anyio.run, main).result()
    if rec.left_out:
        rec.notes.append(
            f"{rec.left_out} blobs left out: over {rec.limits.max_blob_bytes} bytes "
            "(pick runs with --runs or tags with --tags)"
        )
    snap: Snapshot = {"format": "deepscope-snapshot", "version": 1, "panel": None,
                      "runs": chosen, "answers": rec.answers, "blobs": rec.blobs}  # fmt: skip
    return Recorded(snap, rec.blob_bytes, rec.notes)


def snapshot_logdir(
    logdir: str | Path,
    *,
    runs: Sequence[str] | None = None,
    tags: Sequence[str] | None = None,
    limits: Limits | None = None,
) -> Recorded:
    """A snapshot of the runs in `logdir` (see `record`)."""
    from deepscope.server.app import Settings, create_app

    root = Path(logdir)
    if not root.is_dir():
        raise DeepscopeError(f"{root} is not a directory of runs (deepscope.init(logdir=...))")
    return record(create_app(Settings(logdir=root)), runs=runs, tags=tags, limits=limits)


def snapshot_model(graph: Any, *, limits: Limits | None = None) -> Recorded:
    """A snapshot of one model's graph (a `deepscope.graph.Graph`), as ``deepscope view``
    serves it: the dashboard opens on the graph panel."""
    from deepscope.server.app import Settings, create_app

    return record(create_app(Settings(model_graph=graph)), limits=limits, model=True)
