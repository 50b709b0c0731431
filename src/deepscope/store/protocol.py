"""The storage-agnostic read interface (cf. TensorBoard's `data/provider.py`).

The server only ever sees these types. `deepscope.store.open(logdir)` returns a
`StoreReader`; SQLite implements it today, PostgreSQL later. Imports stdlib only.

Downsampling contract for every series: at most `max_points` items come back; the first
and the latest datum are always included; for scalars each bucket keeps its min and max,
and every non-finite value (NaN, +Inf, -Inf) in range is kept as a marker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

RunStatus = Literal["running", "finished", "interrupted", "unreadable"]
Severity = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class RunInfo:
    name: str
    status: RunStatus
    created: float  # unix seconds
    heartbeat: float  # last heartbeat, unix seconds
    config: dict[str, Any] = field(default_factory=dict)
    finished: float | None = None
    error: str | None = None  # why the run cannot be read (status "unreadable"), else None


@dataclass(frozen=True)
class TagInfo:
    tag: str
    kind: str  # "scalar", "histogram", "image", "text", "graph", "attribution", ...
    count: int
    first_step: int
    last_step: int


@dataclass(frozen=True)
class ScalarPoint:
    step: int
    wall_time: float
    value: float  # may be nan / inf / -inf: the JSON encoder keeps the class


@dataclass(frozen=True)
class HistogramPoint:
    step: int
    wall_time: float
    edges: list[float]  # len(counts) + 1, over finite values only
    counts: list[int]
    count: int  # finite values binned
    n_nan: int
    n_posinf: int
    n_neginf: int
    min: float | None  # None when there is no finite value
    max: float | None
    sum: float
    sum_sq: float


@dataclass(frozen=True)
class BlobInfo:
    id: int
    kind: str  # "image", "text", "graph", "attribution", ...
    tag: str
    step: int
    wall_time: float
    path: str  # relative to the run directory, e.g. "blobs/ab/abcdef....png"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EventInfo:
    id: int
    step: int
    wall_time: float
    severity: Severity
    kind: str  # "nan", "exploding_grad", "dead_units", ...
    layer: str | None
    message: str


class RunReader(Protocol):
    name: str
    directory: Path

    def info(self) -> RunInfo: ...

    def tags(self) -> list[TagInfo]: ...

    def scalars(
        self,
        tag: str,
        *,
        max_points: int = 2000,
        start_step: int | None = None,
        end_step: int | None = None,
    ) -> list[ScalarPoint]: ...

    def histograms(self, tag: str, *, max_points: int = 100) -> list[HistogramPoint]: ...

    def blobs(self, kind: str, tag: str | None = None) -> list[BlobInfo]: ...

    def blob_path(self, blob: BlobInfo) -> Path:
        """Absolute path of a blob, confined to the run directory."""
        ...

    def events(self, *, limit: int = 1000) -> list[EventInfo]: ...

    def version(self) -> int:
        """A number that grows whenever anything is committed to the run (for live updates)."""
        ...


class StoreReader(Protocol):
    root: Path

    def runs(self, *, offset: int = 0, limit: int = 500, filter: str = "") -> list[RunInfo]: ...

    def run(self, name: str) -> RunReader:
        """Raises `deepscope.errors.NotFoundError` for an unknown or unsafe run name."""
        ...
