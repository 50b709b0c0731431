"""The wire schemas of every dashboard route: the single source of the frontend's types.

`JSON_ROUTES` maps each JSON route of ``docs/api.md`` to the `TypedDict` of its 200 answer
(``/api/views/<kind>`` once per registered kind); `BINARY_ROUTES` lists the routes that
answer bytes. ``python -m deepscope.views.tsgen`` writes ``frontend/src/wire/types.ts``
from here, and ``tests/views`` checks both that the file is current and that every route
of the app, fetched over the demo's runs, matches its schema.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from deepscope.views import registry
from deepscope.views.kinds.embedding import (
    ProjectionEvent,
    ProjectorCancel,
    ProjectorColumns,
    ProjectorEmbeddings,
    ProjectorJob,
    ProjectorNeighbors,
)
from deepscope.views.kinds.weights import ModelWeightsNode, ModelWeightsTable
from deepscope.views.registry import PartRef
from deepscope.views.schema import NonFinite
from deepscope.views.workbench_wire import (
    WorkbenchInfo,
    WorkbenchJobs,
    WorkbenchTabs,
    WorkbenchView,
)

__all__ = ["BINARY_ROUTES", "JSON_ROUTES", "STREAM_ROUTES", "json_routes", "schemas"]


class ErrorDetail(TypedDict):
    type: str
    message: str


class ErrorBody(TypedDict):
    """Any 4xx/5xx answer."""

    error: ErrorDetail


class Health(TypedDict):
    """``/api/health``."""

    ok: bool
    version: str
    mode: Literal["logdir", "model"]


class RunRow(TypedDict):
    """One run of ``/api/runs`` (``error`` says why an ``unreadable`` run cannot be read)."""

    name: str
    status: Literal["running", "finished", "interrupted", "unreadable"]
    created: float
    heartbeat: float
    finished: float | None
    config: dict[str, Any]
    error: NotRequired[str]
    group: NotRequired[str]  # the job of a rank's run (deepscope.init(group=...))
    rank: NotRequired[int]  # its rank in that job


class Runs(TypedDict):
    """``/api/runs``."""

    runs: list[RunRow]
    total: int


class TagRow(TypedDict):
    run: str
    tag: str
    kind: str
    count: int
    firstStep: int
    lastStep: int


class Tags(TypedDict):
    """``/api/tags``."""

    tags: list[TagRow]


class Scalars(TypedDict):
    """``/api/scalars``: points are ``[step, wallTime, value]``."""

    run: str
    tag: str
    points: list[tuple[int, float, float | NonFinite]]


class HistogramRow(TypedDict):
    step: int
    wallTime: float
    edges: list[float | NonFinite]
    counts: list[int]
    count: int
    nNan: int
    nPosinf: int
    nNeginf: int
    min: float | NonFinite | None
    max: float | NonFinite | None
    sum: float | NonFinite
    sumSq: float | NonFinite


class Histograms(TypedDict):
    """``/api/histograms``."""

    run: str
    tag: str
    histograms: list[HistogramRow]


class BlobRow(TypedDict):
    """A listed blob: fetch its bytes at `url` (``/api/blob``)."""

    id: int
    step: int
    wallTime: float
    meta: dict[str, Any]
    url: str


class Images(TypedDict):
    """``/api/images``."""

    run: str
    tag: str
    images: list[BlobRow]


class TextRow(TypedDict):
    step: int
    wallTime: float
    text: str


class Texts(TypedDict):
    """``/api/text``."""

    run: str
    tag: str
    texts: list[TextRow]


class TensorWire(TypedDict):
    shape: list[int | None] | None
    dtype: str | None


class ParamWire(TypedDict):
    name: str
    shape: list[int]
    dtype: str
    trainable: bool


class GraphNode(TypedDict):
    id: str
    op: str
    label: str
    namespace: str
    attrs: dict[str, Any]
    inputs: list[TensorWire | None]
    outputs: list[TensorWire | None]
    params: list[ParamWire]
    macs: int


class GraphEdge(TypedDict):
    src: str
    dst: str
    srcOutput: int
    dstInput: int
    tensor: TensorWire | None


class GroupWire(TypedDict):
    namespace: str
    moduleType: str | None
    params: int
    trainableParams: int
    frozenParams: int
    macs: int
    opCount: int
    outputShapes: list[list[int | None] | None]


class GraphIR(TypedDict):
    """``/api/graph``: the Graph IR (`deepscope.graph.serialize`)."""

    schemaVersion: int
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    inputs: list[str]
    outputs: list[str]
    groups: dict[str, GroupWire]
    overlays: dict[str, dict[str, float | NonFinite | None]]
    meta: dict[str, Any]


class GraphRow(TypedDict):
    tag: str
    step: int
    id: int


class Graphs(TypedDict):
    """``/api/graphs``."""

    graphs: list[GraphRow]


class LevelNode(TypedDict):
    id: str
    kind: Literal["group", "op"]
    label: str
    op: str
    moduleType: str | None
    namespace: str
    params: int
    trainableParams: int
    macs: int
    opCount: int
    childCount: int
    inputs: list[TensorWire]
    outputs: list[TensorWire]
    attrs: dict[str, Any]
    paramRefs: list[ParamWire]
    overlays: dict[str, float | NonFinite | None]
    entries: NotRequired[list[str]]
    exits: NotRequired[list[str]]


class LevelEdge(TypedDict):
    src: str
    dst: str
    shape: list[int | None] | None
    dtype: str | None
    count: int


class GraphLevel(TypedDict):
    """``/api/graph/level``: the direct children of one namespace."""

    namespace: str
    meta: dict[str, Any]
    overlayNames: list[str]
    nodes: list[LevelNode]
    edges: list[LevelEdge]
    inputs: list[str]
    outputs: list[str]
    truncated: bool


class SearchMatch(TypedDict):
    id: str
    label: str
    op: str | None
    namespace: str
    kind: Literal["group", "op"]


class GraphSearch(TypedDict):
    """``/api/graph/search``."""

    matches: list[SearchMatch]


class EventRow(TypedDict):
    run: str
    id: int
    step: int
    wallTime: float
    severity: Literal["info", "warning", "error"]
    kind: str
    layer: str | None
    message: str


class Events(TypedDict):
    """``/api/events``."""

    events: list[EventRow]


class OverlaySeries(TypedDict):
    name: str
    label: str
    steps: list[int]


class OverlayBadge(TypedDict):
    """A diagnosis event that names a layer, with the graph nodes it maps to."""

    id: int
    step: int
    severity: Literal["info", "warning", "error"]
    kind: str
    layer: str
    message: str
    nodes: list[str]
    namespaces: list[str]


class Overlays(TypedDict):
    """``/api/overlays``: the per-layer series `run.watch` recorded, on the run's graph."""

    run: str
    steps: list[int]
    series: list[OverlaySeries]
    badges: list[OverlayBadge]


class OverlayValues(TypedDict):
    """``/api/overlays/values``: one series at the latest step at or before ``step``."""

    run: str
    series: str
    step: int | None
    values: dict[str, float | NonFinite | None]


class OverlayPoint(TypedDict):
    step: int
    value: float | NonFinite | None


class OverlayNodeSeries(TypedDict):
    """``/api/overlays/node``: one node's value of a series per step; keys mapping nowhere."""

    run: str
    series: str
    node: str
    points: list[OverlayPoint]
    unmapped: list[str]


class AttributionRow(TypedDict):
    id: int
    tag: str
    step: int
    wallTime: float
    meta: dict[str, Any]
    url: str
    inputId: int | None
    inputUrl: str | None


class Attributions(TypedDict):
    """``/api/attributions``."""

    run: str
    items: list[AttributionRow]


class ViewKindRow(TypedDict):
    """One registered view kind and the panel that draws it."""

    kind: str
    panel: str
    parts: dict[str, Literal["png", "json", "array"]]


class ViewKinds(TypedDict):
    """``/api/views``: the registered view kinds."""

    kinds: list[ViewKindRow]


JSON_ROUTES: dict[str, Any] = {
    "/api/health": Health,
    "/api/runs": Runs,
    "/api/tags": Tags,
    "/api/scalars": Scalars,
    "/api/histograms": Histograms,
    "/api/images": Images,
    "/api/text": Texts,
    "/api/graph": GraphIR,
    "/api/graphs": Graphs,
    "/api/graph/level": GraphLevel,
    "/api/graph/search": GraphSearch,
    "/api/events": Events,
    "/api/overlays": Overlays,
    "/api/overlays/values": OverlayValues,
    "/api/overlays/node": OverlayNodeSeries,
    "/api/attributions": Attributions,
    "/api/views": ViewKinds,
    "/api/model/weights": ModelWeightsNode,
    "/api/model/weights/table": ModelWeightsTable,
    "/api/projector/embeddings": ProjectorEmbeddings,
    "/api/projector/columns": ProjectorColumns,
    "/api/projector/project": ProjectorJob,
    "/api/projector/cancel": ProjectorCancel,
    "/api/projector/neighbors": ProjectorNeighbors,
    "/api/workbench": WorkbenchInfo,
    "/api/workbench/tabs": WorkbenchTabs,
    "/api/workbench/view": WorkbenchView,
    "/api/workbench/jobs": WorkbenchJobs,
}
BINARY_ROUTES = {
    "/api/blob": "allow-listed file types",
    "/api/views/{kind}/array": "envelope",
    "/api/model/weights/array": "envelope",
    "/api/projector/sprite": "image/png",
    "/api/projector/coords": "envelope",
    "/api/workbench/input": "image/png",
    "/api/workbench/part": "envelope or image/png",
}
STREAM_ROUTES = {"/api/stream": "text/event-stream"}


def json_routes() -> dict[str, Any]:
    """`JSON_ROUTES` plus ``/api/views/<kind>`` for every registered kind."""
    out = dict(JSON_ROUTES)
    for kind in registry.kinds():
        out[f"/api/views/{kind.name}"] = kind.response
    return out


def schemas() -> list[Any]:
    """Every root schema, in a stable order (the TypeScript generator's input)."""
    return [ErrorBody, NonFinite, PartRef, *json_routes().values(), ProjectionEvent]
