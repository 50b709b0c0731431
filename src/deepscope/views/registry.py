"""The view-kind registry: one row per kind of analysis result the dashboard shows.

A `ViewKind` declares everything every surface needs: the schema of what is logged
(`meta`), the schema of one item on the wire (`item`) and of the whole answer
(`response`), how its bytes are stored (a main blob in one of `formats`, plus named
`parts`: companion PNG/JSON blobs or typed arrays in the binary envelope), and the panel
that draws it (`panel`, a key of ``frontend/src/views/registry.ts``). Writers go through
`write` (``run.log_<kind>``), the server through `build_items` (``/api/views/<kind>``).

Example:
    >>> from deepscope.views import registry
    >>> registry.get("attribution").panel
    'attribution'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict

from deepscope.errors import DeepscopeError, NotFoundError, require
from deepscope.views import envelope
from deepscope.views.schema import errors, validate

if TYPE_CHECKING:  # numpy is imported where arrays are made (`deepscope[arrays]`)
    from numpy.typing import NDArray

__all__ = [
    "ARRAY_EXT",
    "Part",
    "PartRef",
    "ViewKind",
    "block_mean",
    "build_items",
    "get",
    "kinds",
    "register",
    "write",
]

ARRAY_EXT = "dsa"
"""The file extension of an array blob (a `deepscope.views.envelope`)."""

Encoding = Literal["png", "json", "array"]


class PartRef(TypedDict):
    """A companion blob of a view item: fetch `url` (an array `url` answers an envelope)."""

    id: int
    url: str
    encoding: Literal["png", "json", "array"]


@dataclass(frozen=True)
class Part:
    """A companion blob of each item, stored as blob kind `blob_kind` with the item's tag,
    step and join key; arrays are stored as envelopes of one of `dtypes`."""

    blob_kind: str
    encoding: Encoding
    dtypes: tuple[str, ...] = ()


def block_mean(array: NDArray[Any], max_size: int) -> NDArray[Any]:
    """The default downsampling hook: the last two dims averaged over square blocks so
    neither exceeds `max_size` (edges padded by repetition; 1-D arrays by runs)."""
    if array.ndim == 0 or max(array.shape[-2:]) <= max_size:
        return array
    require("numpy", "arrays")
    import numpy as np

    out = np.asarray(array, dtype=np.float32)
    for axis in range(max(out.ndim - 2, 0), out.ndim):
        n = out.shape[axis]
        k = math.ceil(n / max_size)
        if k <= 1:
            continue
        pad = [(0, 0)] * out.ndim
        pad[axis] = (0, (-n) % k)
        out = np.pad(out, pad, mode="edge")
        shape = out.shape[:axis] + (out.shape[axis] // k, k) + out.shape[axis + 1 :]
        out = out.reshape(shape).mean(axis=axis + 1)
    return out


@dataclass(frozen=True)
class ViewKind:
    """One kind of view; see the module docstring. `key` is the meta field that joins an
    item's parts to it (same tag and step); `downsample(array, max_size)` serves arrays at
    ``?maxSize=``."""

    name: str
    panel: str
    meta: type
    item: type
    response: type
    formats: tuple[str, ...]
    parts: Mapping[str, Part] = field(default_factory=dict)
    key: str = "input_index"
    downsample: Callable[[NDArray[Any], int], NDArray[Any]] = block_mean

    def part_kinds(self) -> dict[str, str]:
        """Blob kind -> part name for this kind's parts."""
        return {p.blob_kind: name for name, p in self.parts.items()}


_KINDS: dict[str, ViewKind] = {}


def register(kind: ViewKind) -> ViewKind:
    """Add `kind` (a name may be registered once; re-registering the same row is a no-op)."""
    old = _KINDS.get(kind.name)
    if old is not None and old is not kind:
        raise ValueError(f"view kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def _load_builtin() -> None:
    from deepscope.views.kinds import (  # noqa: F401
        activations,
        atlas,
        attention,
        attribution,
        unit_stats,
        weights,
    )


def get(name: str) -> ViewKind:
    """The registered kind `name`; `NotFoundError` naming the known kinds otherwise."""
    _load_builtin()
    kind = _KINDS.get(name)
    if kind is None:
        raise NotFoundError(f"unknown view kind {name[:64]!r}; known kinds: {sorted(_KINDS)}")
    return kind


def kinds() -> list[ViewKind]:
    """Every registered kind, by name."""
    _load_builtin()
    return [_KINDS[n] for n in sorted(_KINDS)]


class BlobWriter(Protocol):
    """What `write` needs of a run (`deepscope.tracking.run.Run` has it)."""

    def log_blob(
        self,
        kind: str,
        tag: str,
        data: bytes,
        *,
        ext: str,
        meta: Mapping[str, Any] | None = ...,
        step: int | None = ...,
    ) -> Any: ...


def write(
    run: BlobWriter,
    name: str,
    tag: str,
    data: bytes,
    *,
    ext: str,
    meta: Mapping[str, Any],
    parts: Mapping[str, Any] | None = None,
    step: int | None = None,
) -> None:
    """Log one item of view kind `name`: `meta` is checked against the kind's schema before
    anything is written; `parts` maps part names to bytes (png/json) or arrays."""
    kind = get(name)
    if ext not in kind.formats:
        raise DeepscopeError(f"a {name} item is stored as one of {kind.formats}, not {ext!r}")
    meta = {**meta, "format": ext}
    validate(meta, kind.meta)
    checked: list[tuple[Part, bytes, str]] = []
    for part_name, value in (parts or {}).items():
        part = kind.parts.get(part_name)
        if part is None:
            raise DeepscopeError(f"{name} has no part {part_name!r}; parts: {sorted(kind.parts)}")
        if part.encoding == "array":
            require("numpy", "arrays")
            import numpy as np

            arr = np.asarray(value)
            dtype = arr.dtype.name if arr.dtype.name in part.dtypes else part.dtypes[0]
            checked.append((part, envelope.encode(arr, dtype), ARRAY_EXT))
        else:
            if not isinstance(value, bytes):
                raise DeepscopeError(f"part {part_name!r} of {name} is {part.encoding} bytes")
            checked.append((part, value, part.encoding))
    run.log_blob(name, tag, data, ext=ext, meta=dict(meta), step=step)
    for part, blob, part_ext in checked:
        run.log_blob(part.blob_kind, tag, blob, ext=part_ext, meta={kind.key: meta[kind.key]},
                     step=step)  # fmt: skip


class StoredBlob(Protocol):
    """The fields of a stored blob that `build_items` reads (`store.protocol.BlobInfo`)."""

    @property
    def id(self) -> int: ...
    @property
    def tag(self) -> str: ...
    @property
    def step(self) -> int: ...
    @property
    def wall_time(self) -> float: ...
    @property
    def meta(self) -> dict[str, Any]: ...


def build_items(
    kind: ViewKind,
    main: Iterable[StoredBlob],
    parts: Mapping[str, Iterable[StoredBlob]],
    url: Callable[[int], str],
    array_url: Callable[[int], str],
) -> tuple[list[dict[str, Any]], int]:
    """Wire items of `kind` from its stored blobs (`parts` keyed by blob kind) and how many
    stored items were left out because their meta does not match the kind's schema."""
    joined: dict[tuple[str, int, Any, str], int] = {}
    names = kind.part_kinds()
    for blob_kind, blobs in parts.items():
        for b in blobs:
            joined[(b.tag, b.step, b.meta.get(kind.key), names[blob_kind])] = b.id
    out: list[dict[str, Any]] = []
    skipped = 0
    for b in main:
        fmt = b.meta.get("format")
        if errors(b.meta, kind.meta) or fmt not in kind.formats:
            skipped += 1
            continue
        refs: dict[str, Any] = {}
        for part_name, part in kind.parts.items():
            pid = joined.get((b.tag, b.step, b.meta.get(kind.key), part_name))
            link = array_url if part.encoding == "array" else url
            refs[part_name] = (
                None if pid is None else {"id": pid, "url": link(pid), "encoding": part.encoding}
            )
        out.append({"id": b.id, "tag": b.tag, "step": b.step, "wallTime": b.wall_time,
                    "format": fmt, "url": url(b.id), "meta": b.meta, "parts": refs})  # fmt: skip
    return out, skipped
