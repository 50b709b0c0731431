"""The ``embedding`` blobs of a run (``run.log_embedding``) and the projector's wire schemas.

One logged embedding (a tag and step) is stored as:

- kind ``embedding``: a JSON blob holding the columns (labels and metadata, in their wire
  form, see `ProjectorColumns`); its meta (`EmbeddingMeta`) says N, D, the dtype, how many
  chunks, the column names and types, and the sprite layout;
- kind ``embedding_vectors``: the N x D matrix as row chunks, each a binary array envelope
  (`deepscope.views.envelope`, float16 or float32, at most `CHUNK_BYTES`), meta
  ``{"chunk", "start", "rows"}``;
- kind ``embedding_sprite`` (optional): a PNG atlas of thumbnails, tile i at row
  ``i // cols``, column ``i % cols``;
- kind ``projection``: a projection computed by the dashboard (an envelope of N x dims
  float32, NaN rows for dropped points), meta `ProjectionMeta`, so reopening is instant.

The dashboard reads them with `/api/projector/*` (`deepscope.server.routes.projector`), not
through ``/api/views``: the projector panel is its own tab. Nothing here imports numpy at
module level (the server reads metas and JSON without it).
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [
    "BLOB_KIND",
    "CHUNK_BYTES",
    "CHUNK_KIND",
    "PROJECTION_KIND",
    "SPRITE_KIND",
    "EmbeddingMeta",
    "ProjectorCancel",
    "ProjectorColumns",
    "ProjectorEmbeddings",
    "ProjectorJob",
    "ProjectorNeighbors",
    "chunk_rows",
]

BLOB_KIND = "embedding"
CHUNK_KIND = "embedding_vectors"
SPRITE_KIND = "embedding_sprite"
PROJECTION_KIND = "projection"
CHUNK_BYTES = 32 * 1024 * 1024
"""The largest chunk of the matrix in one blob (the envelope caps one array at 64 MiB)."""

ColumnType = Literal["category", "number", "text"]
JobState = Literal["queued", "running", "done", "error", "cancelled"]


def chunk_rows(dim: int, itemsize: int) -> int:
    """Rows of a D-column matrix stored per chunk blob."""
    return max(1, CHUNK_BYTES // max(1, dim * itemsize))


class ProjectorColumnInfo(TypedDict):
    """A column of an embedding: its name and type."""

    name: str
    type: Literal["category", "number", "text"]


class ProjectorSprite(TypedDict):
    """The thumbnail atlas: `tile` is [width, height]; tile i at row i // cols, col i % cols;
    `count` thumbnails (the first `count` points; fewer than N when the atlas is full)."""

    tile: tuple[int, int]
    cols: int
    count: int


class EmbeddingMeta(TypedDict):
    """The stored meta of an ``embedding`` blob."""

    n: int
    dim: int
    dtype: Literal["float16", "float32"]
    chunks: int
    nonfinite: int
    columns: list[ProjectorColumnInfo]
    sprite: ProjectorSprite | None
    format: Literal["json"]


class ProjectionMeta(TypedDict):
    """The stored meta of a ``projection`` blob."""

    key: str
    method: str
    dims: int
    seed: int
    params: dict[str, Any]
    dropped: int
    extras: dict[str, Any]


class ProjectorEmbedding(TypedDict):
    """One logged embedding (a tag at a step). `nonfinite`: rows with NaN/Inf (dropped
    when projected)."""

    tag: str
    step: int
    n: int
    dim: int
    columns: list[ProjectorColumnInfo]
    sprite: ProjectorSprite | None
    nonfinite: int


class ProjectorEmbeddings(TypedDict):
    """``/api/projector/embeddings``: the embeddings of a run, by tag then step."""

    embeddings: list[ProjectorEmbedding]


class ProjectorCategoryColumn(TypedDict):
    """A category column: point i has category ``categories[codes[i]]``."""

    name: str
    type: Literal["category"]
    categories: list[str]
    codes: list[int]


class ProjectorNumberColumn(TypedDict):
    """A number column (null: NaN or infinite)."""

    name: str
    type: Literal["number"]
    values: list[float | None]


class ProjectorTextColumn(TypedDict):
    """A text column (each value at most 500 characters)."""

    name: str
    type: Literal["text"]
    values: list[str]


class ProjectorColumns(TypedDict):
    """``/api/projector/columns``: every column of an embedding, values for every point."""

    columns: list[ProjectorCategoryColumn | ProjectorNumberColumn | ProjectorTextColumn]


class ProjectorJob(TypedDict):
    """``POST /api/projector/project``: the projection's key and how far it is. `message`
    says why it failed (state ``error``); `dropped` counts NaN/Inf rows left out."""

    key: str
    state: Literal["queued", "running", "done", "error", "cancelled"]
    progress: float
    message: NotRequired[str]
    dropped: NotRequired[int]


class ProjectorCancel(TypedDict):
    """``POST /api/projector/cancel``."""

    cancelled: bool


class ProjectorNeighbor(TypedDict):
    """A neighbour of a point in the original space."""

    index: int
    distance: float


class ProjectorNeighbors(TypedDict):
    """``/api/projector/neighbors``: the k nearest points to `index`, nearest first."""

    index: int
    neighbors: list[ProjectorNeighbor]


class ProjectionEvent(TypedDict):
    """The data of an SSE ``event: projection`` on ``/api/stream``."""

    run: str
    key: str
    state: Literal["queued", "running", "done", "error", "cancelled"]
    progress: float
    partial: bool
