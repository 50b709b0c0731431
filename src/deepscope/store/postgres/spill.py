"""The PostgreSQL writer's spill file: batches that could not be committed, replayed later.

One JSON line per batch: ``{"batch": "<uuid>", "records": [...]}``. Records keep what the
store needs, losslessly: floats as `float.hex` text (NaN, ±Inf and -0.0 included), blob bytes
in base64, histograms as their fields. Strings keep lone surrogates (JSON escapes them).
A line cut short by a crash is skipped on replay; replaying a batch twice is harmless (its
id is committed once: `deepscope.store.postgres.schema`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepscope.store.protocol import (
    BlobRecord,
    EventRecord,
    HistogramRecord,
    ScalarRecord,
    WriteRecord,
)

__all__ = ["SpilledHistogram", "append_batch", "decode_batch", "encode_batch", "read_batches"]


@dataclass(frozen=True)
class SpilledHistogram:
    """A histogram read back from a spill file (the fields the store writes)."""

    edges: list[float]
    counts: list[int]
    count: int
    n_nan: int
    n_posinf: int
    n_neginf: int
    min: float | None
    max: float | None
    sum: float
    sum_sq: float


def _f(x: Any) -> str | None:
    return None if x is None else float(x).hex()


def _unf(x: Any) -> float | None:
    return None if x is None else float.fromhex(x)


def _encode(rec: WriteRecord) -> list[Any]:
    r: Any = rec  # dispatched on the code: the hot path may queue plain tuples of the fields
    code = r[0]
    if code in "sd":
        return ["s", r[1], _f(r[2]), [[t, _f(v)] for t, v in r[3]]]
    if code == "h":
        h = r[4]
        return ["h", r[1], r[2], _f(r[3]), {
            "edges": [_f(e) for e in h.edges], "counts": [int(c) for c in h.counts],
            "count": int(h.count), "n_nan": int(h.n_nan), "n_posinf": int(h.n_posinf),
            "n_neginf": int(h.n_neginf), "min": _f(h.min), "max": _f(h.max),
            "sum": _f(h.sum), "sum_sq": _f(h.sum_sq)}]  # fmt: skip
    if code == "b":
        data = base64.b64encode(r[6]).decode("ascii")
        return ["b", r[1], r[2], r[3], _f(r[4]), r[5], data, r[7]]
    return ["e", r[1], _f(r[2]), r[3], r[4], r[5], r[6]]


def _decode(x: list[Any]) -> WriteRecord:
    code = x[0]
    if code == "s":
        pairs = tuple((t, float.fromhex(v)) for t, v in x[3])
        return ScalarRecord("s", int(x[1]), float.fromhex(x[2]), pairs)
    if code == "h":
        d = x[4]
        h = SpilledHistogram(
            edges=[float.fromhex(e) for e in d["edges"]], counts=list(d["counts"]),
            count=d["count"], n_nan=d["n_nan"], n_posinf=d["n_posinf"], n_neginf=d["n_neginf"],
            min=_unf(d["min"]), max=_unf(d["max"]), sum=float.fromhex(d["sum"]),
            sum_sq=float.fromhex(d["sum_sq"]),
        )  # fmt: skip
        return HistogramRecord("h", x[1], int(x[2]), float.fromhex(x[3]), h)
    if code == "b":
        data = base64.b64decode(x[6])
        return BlobRecord("b", x[1], x[2], int(x[3]), float.fromhex(x[4]), x[5], data, x[7])
    if code == "e":
        return EventRecord("e", int(x[1]), float.fromhex(x[2]), x[3], x[4], x[5], x[6])
    raise ValueError(f"unknown spilled record {code!r}")


def encode_batch(batch_id: str, records: list[WriteRecord]) -> bytes:
    """One spill line for a batch."""
    line = json.dumps({"batch": batch_id, "records": [_encode(r) for r in records]})
    return (line + "\n").encode("utf-8")


def decode_batch(line: bytes) -> tuple[str, list[WriteRecord]] | None:
    """(batch id, records) of a spill line; None for a line cut short or not ours."""
    try:
        obj = json.loads(line)
        return str(obj["batch"]), [_decode(x) for x in obj["records"]]
    except (ValueError, KeyError, TypeError, IndexError):
        return None


def append_batch(path: Path, line: bytes) -> None:
    """Append one line to `path` (created 0600: it holds training data). Raises OSError."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(line)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except OSError:
            try:  # never leave half a line: the next batch would be glued to it
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)


def read_batches(path: Path) -> Iterator[tuple[str, list[WriteRecord]]]:
    """The batches of a spill file, in order (lines that cannot be read are skipped)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with f:
        for line in f:
            got = decode_batch(line)
            if got is not None:
                yield got
