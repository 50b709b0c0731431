"""The whole store contract: typed write records, the run writer, the run reader and the
store (listing, counting and opening runs). Cf. TensorBoard's `data/provider.py`.

`deepscope.store.open(target)` returns a `Store` and `deepscope.store.open_writer(target,
...)` a `RunWriter`, for a log directory (SQLite, ``store/sqlite/``: one ``run.db`` per run)
or a ``postgresql://`` URL (``store/postgres/``). `deepscope.tracking` and
`deepscope.server` use these types and nothing else of a backend. Imports stdlib only.

Write records are named tuples (cheap to build in the training thread; the first field is
a one-letter code the writer dispatches on): `ScalarRecord` (``"s"``; ``"d"`` while some
values are `deepscope.store.device.DeviceValue` s still on an accelerator),
`HistogramRecord` (``"h"``), `BlobRecord` (``"b"``), `EventRecord` (``"e"``).

Downsampling contract for every series: at most `max_points` items come back; the first
and the latest datum are always included; for scalars each bucket keeps its min and max,
and every non-finite value (NaN, +Inf, -Inf) in range is kept as a marker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, Protocol

RunStatus = Literal["running", "finished", "interrupted", "unreadable"]
Severity = Literal["info", "warning", "error"]
EndState = Literal["finished", "interrupted"]


# ---- write records ------------------------------------------------------------------------
class ScalarRecord(NamedTuple):
    """One ``run.log(...)`` call: scalars of one step, one atomic unit in the store."""

    code: Literal["s", "d"]  # "d": some values are DeviceValue (read in the writer thread)
    step: int
    wall_time: float
    pairs: Sequence[tuple[str, Any]]  # (tag, float | DeviceValue)


class HistogramRecord(NamedTuple):
    """One histogram (`deepscope._histdata.HistogramData`, or a pending one with
    ``.result()`` that the writer thread finishes)."""

    code: Literal["h"]
    tag: str
    step: int
    wall_time: float
    histogram: Any


class BlobRecord(NamedTuple):
    """An image, text, graph JSON... `path` is content-addressed
    (`deepscope.store.blobs.blob_relpath`), `meta` a JSON object as text."""

    code: Literal["b"]
    kind: str
    tag: str
    step: int
    wall_time: float
    path: str
    data: bytes
    meta: str


class EventRecord(NamedTuple):
    """A diagnostic event (NaN seen, exploding gradient, dead units...)."""

    code: Literal["e"]
    step: int
    wall_time: float
    severity: str
    kind: str
    layer: str | None
    message: str


WriteRecord = ScalarRecord | HistogramRecord | BlobRecord | EventRecord


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
    """Reads one run. `directory`: where its blob files are (SQLite: the run folder;
    PostgreSQL: a local cache the blobs are fetched into on demand)."""

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

    def blobs(
        self, kind: str, tag: str | None = None, *, limit: int | None = None
    ) -> list[BlobInfo]:
        """Blobs of `kind` (of `tag`), oldest first; with `limit`, only the latest `limit`."""
        ...

    def blob(self, blob_id: int) -> BlobInfo:
        """One blob by id; `deepscope.errors.NotFoundError` if there is none."""
        ...

    def blob_path(self, blob: BlobInfo) -> Path:
        """Absolute path of a blob's file, confined to `directory` (fetched there first by a
        backend that keeps blobs elsewhere)."""
        ...

    def read_blob(self, blob: BlobInfo, *, max_bytes: int = 64 * 1024 * 1024) -> bytes:
        """The bytes of a blob; `deepscope.errors.StoreError` past `max_bytes`."""
        ...

    def events(self, *, limit: int = 1000) -> list[EventInfo]: ...

    def version(self) -> int:
        """A number that grows whenever anything is committed to the run (for live updates)."""
        ...


class Store(Protocol):
    """A place runs live in: a log directory (SQLite) or a database (PostgreSQL)."""

    def runs(self, *, offset: int = 0, limit: int = 500, filter: str = "") -> list[RunInfo]:
        """Runs sorted by name whose name contains `filter` (case-insensitive); a run that
        cannot be read is listed with status ``"unreadable"``."""
        ...

    def run_names(self, *, filter: str = "") -> list[str]: ...

    def count_runs(self, *, filter: str = "") -> int: ...

    def run(self, name: str) -> RunReader:
        """Raises `deepscope.errors.NotFoundError` for an unknown or unsafe run name."""
        ...

    def versions(self, names: Sequence[str]) -> dict[str, int | None]:
        """`RunReader.version` of many runs at once (None: gone or unreadable)."""
        ...

    def delete_run(self, name: str, *, force: bool = False) -> None:
        """Delete run `name`: every row and blob of it (a log directory: its folder, links
        never followed; a database: one transaction). Refuses a run still being written,
        or one whose state cannot be read, with `deepscope.errors.RunInUseError` unless
        `force`; `deepscope.errors.NotFoundError` for an unknown run. Listings and
        `versions` stop showing it at once."""
        ...


StoreReader = Store  # the earlier name of the read side


class RunWriter(Protocol):
    """Writes one run from a background thread (`deepscope.store.writer.SqliteRunWriter`,
    `deepscope.store.postgres.writer.PostgresRunWriter`).

    Durability for every backend: `put` only enqueues; batches commit all-or-nothing every
    flush interval; `flush` blocks until everything put before it is committed (or, while
    the store is down, spilled to a local file: PostgreSQL replays it later); after kill -9
    at most one flush interval is lost. A store fault never reaches the training loop
    unless the writer is strict: it warns once (`check`) and counts `dropped` points.
    """

    name: str
    dropped: int  # points that are not in the store (spilled or lost), counted
    spill_path: Path | None

    @property
    def location(self) -> str:
        """Where the run is written, for messages (a path, or a URL without password)."""
        ...

    @property
    def directory(self) -> Path | None:
        """The run's folder (a log directory store), None for a database store."""
        ...

    @property
    def has_pending(self) -> bool:
        """A warning (or, strict, an error) waits to be shown by `check`."""
        ...

    def put(self, record: WriteRecord, nbytes: int = 0) -> None:
        """Enqueue one record (`nbytes`: blob bytes, for the queue's byte bound)."""
        ...

    def check(self) -> None:
        """Show a pending warning once, or raise `StoreError` in strict mode."""
        ...

    def flush(self, timeout: float | None = None) -> None: ...

    def close(self, state: str = "finished", timeout: float = 30.0) -> None:
        """Flush, end this process's session in `state` (an `EndState`), stop the thread."""
        ...
