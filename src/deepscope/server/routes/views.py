"""``/api/views``: one route family for every view kind (`deepscope.views.registry`).

``/api/views`` lists the kinds; ``/api/views/<kind>?run=&tag=&step=`` answers the kind's
items (its wire schema, `ViewKind.response`); ``/api/views/<kind>/array?run=&id=&maxSize=``
answers one array part as a binary envelope (`deepscope.views.envelope`), a window of it
with ``index=``/``rows=``/``cols=``, downsampled by the kind's hook when ``maxSize`` is
smaller than the array.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deepscope.errors import NotFoundError
from deepscope.server import params
from deepscope.server.responses import StrictJSONResponse
from deepscope.server.routes.blobs import MAX_ITEMS, blob_file, blob_url
from deepscope.server.state import app_state
from deepscope.views import envelope, registry

MAX_SIDE = 8192


async def kinds(request: Request) -> Response:
    """``{"kinds": [{"kind", "panel", "parts": {name: encoding}}]}`` (reads no run)."""
    rows = [
        {"kind": k.name, "panel": k.panel, "parts": {n: p.encoding for n, p in k.parts.items()}}
        for k in registry.kinds()
    ]
    return StrictJSONResponse({"kinds": rows})


def array_url(kind: str, run: str, blob_id: int) -> str:
    """The URL of an array part (an envelope)."""
    return f"/api/views/{quote(kind, safe='')}/array?" + urlencode({"run": run, "id": blob_id})


def items(request: Request) -> Response:
    """``{"kind", "run", "items": [...], "skipped"}``: the latest ``limit`` items of the kind
    (of ``tag`` and ``step`` when given), oldest first; ``skipped`` counts stored items whose
    meta does not match the kind's schema (left out)."""
    kind = registry.get(request.path_params["kind"])
    run = params.text(request, "run")
    tag = request.query_params.get("tag")
    step = params.optional_integer(request, "step")
    limit = params.integer(request, "limit", default=MAX_ITEMS, minimum=1, maximum=MAX_ITEMS)
    reader = app_state(request).run(run)
    fetch = MAX_ITEMS if step is not None else limit
    main = [b for b in reader.blobs(kind.name, tag, limit=fetch) if step is None or b.step == step]
    main = main[-limit:]
    steps = {b.step for b in main}
    parts = {
        p.blob_kind: [
            b for b in reader.blobs(p.blob_kind, tag, limit=MAX_ITEMS * 4) if b.step in steps
        ]
        for p in kind.parts.values()
    }
    out, skipped = registry.build_items(
        kind,
        main,
        parts,
        url=lambda i: blob_url(run, i),
        array_url=lambda i: array_url(kind.name, run, i),
    )
    body: dict[str, Any] = {"kind": kind.name, "run": run, "items": out, "skipped": skipped}
    return StrictJSONResponse(body)


def _span(request: Request, name: str, n: int) -> slice | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    start, _, stop = raw.partition(":")
    try:
        a, b = int(start or 0), int(stop) if stop else n
    except ValueError:
        raise params.BadRequestError(f"query parameter {name!r} is 'start:stop'") from None
    if not 0 <= a < b <= n:
        raise params.BadRequestError(f"{name}={raw[:32]!r} is outside 0:{n}")
    return slice(a, b)


def _region(request: Request, shape: tuple[int, ...]) -> tuple[Any, ...] | None:
    """``index=`` (the first axis), ``rows=a:b`` and ``cols=a:b`` (the last two axes)."""
    if len(shape) < 2:
        return None
    index = params.optional_integer(request, "index")
    if index is not None and not (len(shape) >= 3 and 0 <= index < shape[0]):
        raise params.BadRequestError(f"index={index} is outside the first axis of {list(shape)}")
    rows, cols = _span(request, "rows", shape[-2]), _span(request, "cols", shape[-1])
    if index is None and rows is None and cols is None:
        return None
    lead: tuple[Any, ...] = (index,) if index is not None else ()
    middle = (slice(None),) * (len(shape) - 2 - len(lead))
    return (*lead, *middle, rows or slice(None), cols or slice(None))


def array(request: Request) -> Response:
    """One array part of a view item as a ``application/x-deepscope-array`` envelope;
    ``index=i`` answers ``array[i]`` and ``rows=a:b`` / ``cols=a:b`` a window of the last
    two axes (a zoomed block at full resolution), before any ``maxSize`` downsampling."""
    kind = registry.get(request.path_params["kind"])
    run = params.text(request, "run")
    blob_id = params.integer(request, "id", default=-1, minimum=0, maximum=2**62)
    if blob_id < 0:
        raise params.BadRequestError("query parameter 'id' is required")
    max_size = params.integer(request, "maxSize", default=MAX_SIDE, minimum=1, maximum=MAX_SIDE)
    reader = app_state(request).run(run)
    blob = reader.blob(blob_id)
    part = kind.parts.get(kind.part_kinds().get(blob.kind, ""))
    if part is None or part.encoding != "array":
        raise NotFoundError(f"blob {blob_id} is not an array of a {kind.name} view")
    path = blob_file(reader, blob)
    if path.suffix != "." + registry.ARRAY_EXT:
        raise NotFoundError(f"blob {blob_id} is not an array envelope")
    with path.open("rb") as f:
        data = f.read(envelope.MAX_ARRAY_BYTES + 1024)
    header = envelope.read_header(data)  # a stored file that is not a whole envelope is a 422
    region = _region(request, header.shape)
    if region is not None:  # a sub-array: one leading index and/or a window of the last two
        arr = envelope.decode(data)[region]
        data = envelope.encode(arr, arr.dtype.name)
        header = envelope.read_header(data)
    if header.shape and max(header.shape[-2:]) > max_size:  # only downsampling needs numpy
        arr = envelope.decode(data)
        small = kind.downsample(arr, max_size)
        data = envelope.encode(small, arr.dtype.name if arr.dtype.name in part.dtypes else None)
    return Response(
        data,
        media_type=envelope.CONTENT_TYPE,
        headers={"cache-control": "private, max-age=86400", "x-content-type-options": "nosniff"},
    )


routes = [
    Route("/api/views", kinds, methods=["GET"]),
    Route("/api/views/{kind}", items, methods=["GET"]),
    Route("/api/views/{kind}/array", array, methods=["GET"]),
]
