"""Rows of a run.db turned into the records of `deepscope.store.protocol`, strictly.

Every column goes through `deepscope.store.checks` (`as_int` and friends), so a wrongly
typed cell raises `BadValue` (which `deepscope.store.reader` turns into
`UnreadableRunError`) instead of a raw ``TypeError`` later. Also: `decode_value` (a stored
(value, kind) pair back to its float) and `run_status` (a run's status from its sessions).

Imports the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from deepscope.store import jsonenc
from deepscope.store.checks import (
    BadValue,
    as_bytes,
    as_float,
    as_int,
    as_opt_float,
    as_opt_int,
    as_opt_str,
    as_str,
)
from deepscope.store.liveness import alive
from deepscope.store.protocol import (
    BlobInfo,
    EventInfo,
    HistogramPoint,
    RunStatus,
    ScalarPoint,
    TagInfo,
)
from deepscope.store.rows import unpack_le
from deepscope.store.schema import KIND_NAN, KIND_NEGINF, KIND_NEGZERO, KIND_POSINF

__all__ = [
    "blob_info",
    "decode_value",
    "event_info",
    "histogram_point",
    "run_row",
    "run_status",
    "scalar_point",
    "session_rows",
    "tag_info",
]

_SPECIAL = {KIND_NAN: math.nan, KIND_POSINF: math.inf, KIND_NEGINF: -math.inf, KIND_NEGZERO: -0.0}


def decode_value(value: float | None, kind: int) -> float:
    """The float a (value, kind) pair stands for."""
    if kind in _SPECIAL:
        return _SPECIAL[kind]
    return float(value) if value is not None else math.nan


def run_status(sessions: list[tuple[Any, ...]], now: float, stale_after: float) -> RunStatus:
    """From rows ``(parent, heartbeat, ended, state[, alive])`` of the session table.

    running: some session is live (not ended, heartbeat fresh, and its process not known
    to be gone: `alive` is False only when this machine can tell, see
    `deepscope.store.liveness`); interrupted: a top-level session ended without finishing
    (SIGTERM, exception), its process is gone (kill -9: seen at once on this machine) or
    it went silent; finished otherwise. Forked children (DataLoader workers) that vanish
    do not count.
    """

    def live(s: tuple[Any, ...]) -> bool:
        gone = len(s) > 4 and s[4] is False
        return s[2] is None and not gone and now - s[1] <= stale_after

    if any(live(s) for s in sessions):
        return "running"
    roots = [s for s in sessions if s[0] is None] or sessions
    if not roots:
        return "interrupted"
    if any(s[2] is None or s[3] == "interrupted" for s in roots):
        return "interrupted"
    return "finished"


def session_rows(rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows ``(parent, heartbeat, ended, state, pid, host, proc_id)`` of the session table
    as `run_status` takes them: ``(parent, heartbeat, ended, state, alive)``, where `alive`
    is asked of this machine for a session that has not ended (None otherwise)."""
    sessions = []
    for parent, hb, ended, state, pid, host, proc_id in rows:
        as_opt_int(parent, "session.parent")
        hb = as_float(hb, "session.heartbeat")
        ended = as_opt_float(ended, "session.ended")
        state = as_str(state, "session.state")
        known = alive(host, pid, proc_id) if ended is None else None
        sessions.append((parent, hb, ended, state, known))
    return sessions


def run_row(row: tuple[Any, ...]) -> tuple[float, Any]:
    """``(created, config)`` from the row ``(name, created, config)`` of the run table; a
    config that is not JSON reads as ``{}``."""
    as_str(row[0], "run.name")
    created = as_float(row[1], "run.created")
    try:
        config = jsonenc.loads(as_str(row[2], "run.config"))
    except ValueError:
        config = {}
    return created, config


def tag_info(r: tuple[Any, ...]) -> TagInfo:
    """A row ``(name, kind, count, first_step, last_step)`` of the tag table."""
    return TagInfo(
        tag=as_str(r[0], "tag.name"),
        kind=as_str(r[1], "tag.kind"),
        count=as_int(r[2], "tag.count"),
        first_step=as_int(r[3], "tag.first_step"),
        last_step=as_int(r[4], "tag.last_step"),
    )


def scalar_point(r: tuple[Any, ...]) -> ScalarPoint:
    """A row ``(id, step, wall_time, value, kind)`` as `scalar_rows` returns it."""
    return ScalarPoint(
        step=as_int(r[1], "scalar.step"),
        wall_time=as_float(r[2], "scalar.wall_time"),
        value=decode_value(as_opt_float(r[3], "scalar.value"), as_int(r[4], "scalar.kind")),
    )


def histogram_point(r: tuple[Any, ...]) -> HistogramPoint:
    """A row ``(step, wall_time, edges, counts, count, n_nan, n_posinf, n_neginf, min, max,
    sum, sum_sq)`` of the histogram table whose step the caller has checked (`as_int`)."""
    edges = unpack_le(as_bytes(r[2], "histogram.edges", 8), "d")
    counts = unpack_le(as_bytes(r[3], "histogram.counts", 8), "q")
    if len(edges) != len(counts) + 1 and len(counts):
        raise BadValue(f"a histogram has {len(edges)} edges for {len(counts)} bins")
    total = as_opt_float(r[10], "histogram.sum")
    sum_sq = as_opt_float(r[11], "histogram.sum_sq")
    nan = math.nan
    return HistogramPoint(
        step=r[0],
        wall_time=as_float(r[1], "histogram.wall_time"),
        edges=edges,
        counts=counts,
        count=as_int(r[4], "histogram.count"),
        n_nan=as_int(r[5], "histogram.n_nan"),
        n_posinf=as_int(r[6], "histogram.n_posinf"),
        n_neginf=as_int(r[7], "histogram.n_neginf"),
        min=as_opt_float(r[8], "histogram.min"),
        max=as_opt_float(r[9], "histogram.max"),
        sum=nan if total is None else total,
        sum_sq=nan if sum_sq is None else sum_sq,
    )


def event_info(r: tuple[Any, ...]) -> EventInfo:
    """A row ``(id, step, wall_time, severity, kind, layer, message)`` of the event table."""
    return EventInfo(
        id=as_int(r[0], "event.id"),
        step=as_int(r[1], "event.step"),
        wall_time=as_float(r[2], "event.wall_time"),
        severity=as_str(r[3], "event.severity"),  # type: ignore[arg-type]
        kind=as_str(r[4], "event.kind"),
        layer=as_opt_str(r[5], "event.layer"),
        message=as_str(r[6], "event.message"),
    )


def blob_info(r: tuple[Any, ...]) -> BlobInfo:
    """A row ``(id, kind, tag name, step, wall_time, path, meta)`` of blob joined to tag; a
    meta that is not a JSON object reads as ``{}``."""
    return BlobInfo(
        id=as_int(r[0], "blob.id"),
        kind=as_str(r[1], "blob.kind"),
        tag=as_str(r[2], "tag.name"),
        step=as_int(r[3], "blob.step"),
        wall_time=as_float(r[4], "blob.wall_time"),
        path=as_str(r[5], "blob.path"),
        meta=_meta(as_str(r[6], "blob.meta")),
    )


def _meta(text: str) -> dict[str, Any]:
    try:
        value = jsonenc.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
