"""Rows of the run database: how queue items become INSERTs (writer thread only), and
the little-endian packing of histogram edges/counts (the reader unpacks with `unpack_le`)."""

from __future__ import annotations

import math
import sqlite3
import sys
from array import array
from typing import Any

from deepscope.store.levels import fold
from deepscope.store.schema import KIND_FINITE, KIND_NAN, KIND_NEGINF, KIND_NEGZERO, KIND_POSINF

_INSERT_SCALAR = "INSERT INTO scalar (tag_id, step, wall_time, value, kind) VALUES (?, ?, ?, ?, ?)"
_INSERT_HISTOGRAM = (
    "INSERT INTO histogram (tag_id, step, wall_time, edges, counts, count, n_nan, n_posinf, "
    "n_neginf, min, max, sum, sum_sq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_BLOB = (
    "INSERT INTO blob (tag_id, kind, step, wall_time, path, meta) VALUES (?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT = (
    "INSERT INTO event (step, wall_time, severity, kind, layer, message) VALUES (?, ?, ?, ?, ?, ?)"
)
# per-tag count and step range, from the rows this batch just added (ids above the old max)
_TAG_STATS = (
    "UPDATE tag SET count = tag.count + s.n, first_step = min(coalesce(tag.first_step, s.lo), s.lo),"
    " last_step = max(coalesce(tag.last_step, s.hi), s.hi)"
    " FROM (SELECT tag_id, COUNT(*) AS n, MIN(step) AS lo, MAX(step) AS hi FROM {table} NOT INDEXED"
    " WHERE id > ? GROUP BY tag_id) AS s WHERE tag.id = s.tag_id"
)


def classify(v: float) -> tuple[float | None, int]:
    """(value column, kind column) for a float: SQLite keeps neither NaN nor -0.0."""
    if v != v:
        return None, KIND_NAN
    if v == math.inf:
        return None, KIND_POSINF
    if v == -math.inf:
        return None, KIND_NEGINF
    if v == 0.0 and math.copysign(1.0, v) < 0:
        return 0.0, KIND_NEGZERO
    return v, KIND_FINITE


def pack_le(values: Any, code: str) -> bytes:
    """Little-endian bytes of `values` as float64 (`code` ``"d"``) or int64 (``"q"``).

    Plain lists/tuples are packed with the stdlib (no numpy: the base install has none);
    anything else (numpy arrays, tensors) goes through numpy, which made it.
    """
    if isinstance(values, (list, tuple, array)):
        cast = float if code == "d" else int
        packed = array(code, [cast(v) for v in values])
        if sys.byteorder == "big":
            packed.byteswap()
        return packed.tobytes()
    import numpy as np

    return np.ascontiguousarray(values, dtype="<f8" if code == "d" else "<i8").tobytes()


def unpack_le(data: bytes, code: str) -> list[Any]:
    """The values of `pack_le` bytes (float64 ``"d"`` or int64 ``"q"``), as Python numbers."""
    values = array(code)
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values.tolist()


def histogram_row(h: Any) -> tuple[Any, ...]:
    def opt(x: Any) -> float | None:
        if x is None:
            return None
        f = float(x)
        return f if f == f else None

    return (
        pack_le(h.edges, "d"),
        pack_le(h.counts, "q"),
        int(h.count),
        int(h.n_nan),
        int(h.n_posinf),
        int(h.n_neginf),
        opt(h.min),
        opt(h.max),
        opt(h.sum),
        opt(h.sum_sq),
    )


def tag_id(conn: sqlite3.Connection, ids: dict[tuple[str, str], int], name: str, kind: str) -> int:
    key = (name, kind)
    tid = ids.get(key)
    if tid is None:
        conn.execute("INSERT OR IGNORE INTO tag (name, kind) VALUES (?, ?)", key)
        tid = conn.execute("SELECT id FROM tag WHERE name = ? AND kind = ?", key).fetchone()[0]
        ids[key] = tid
    return int(tid)


def insert_items(
    conn: sqlite3.Connection, items: list[Any], ids: dict[tuple[str, str], int]
) -> None:
    """Insert a batch of queue items (inside the caller's BEGIN IMMEDIATE), update the
    per-tag counts and step ranges from the rows just added and fold new scalars into the
    min/max pyramid (`deepscope.store.levels`), all in the same transaction."""
    scalars: list[tuple[Any, ...]] = []
    hists: list[tuple[Any, ...]] = []
    blobs: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    ids = ids
    inf = math.inf
    special = False  # a NaN/±Inf (or a zero) among the scalars: the pyramid notes those
    for it in items:
        code = it[0]
        if code == "s":
            _, step, wall, pairs = it
            for tag, v in pairs:
                tid = ids.get((tag, "scalar")) or tag_id(conn, ids, tag, "scalar")
                if -inf < v < inf and v != 0.0:  # the common case, inline
                    scalars.append((tid, step, wall, v, KIND_FINITE))
                else:
                    special = True
                    scalars.append((tid, step, wall, *classify(v)))
        elif code == "h":
            _, tag, step, wall, h = it
            tid = tag_id(conn, ids, tag, "histogram")
            hists.append((tid, step, wall, *histogram_row(h)))
        elif code == "b":
            _, kind, tag, step, wall, relpath, _data, meta = it
            tid = tag_id(conn, ids, tag, kind)
            blobs.append((tid, kind, step, wall, relpath, meta))
        elif code == "e":
            events.append(it[1:])
    for table, rows, sql in (
        ("scalar", scalars, _INSERT_SCALAR),
        ("histogram", hists, _INSERT_HISTOGRAM),
        ("blob", blobs, _INSERT_BLOB),
    ):
        if rows:
            before = conn.execute(f"SELECT coalesce(MAX(id), 0) FROM {table}").fetchone()[0]
            conn.executemany(sql, rows)
            conn.execute(_TAG_STATS.format(table=table), (before,))
            if table == "scalar":
                fold(conn, before, rows, nonfinite=special)
    if events:
        conn.executemany(_INSERT_EVENT, events)


_INT64 = 2**63


def _text_ok(s: Any) -> bool:
    if type(s) is not str:
        return False
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: SQLite cannot take it
        return False
    return True


def _int_ok(n: Any) -> bool:
    return type(n) is int and -_INT64 <= n < _INT64


def split_valid(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """(items the store can hold, items it cannot): text must be valid Unicode and steps
    must fit in int64. A scalar item keeps its valid pairs and gives up only the bad ones."""
    good: list[Any] = []
    bad: list[Any] = []
    for it in items:
        code = it[0]
        if code in "sd":
            if not _int_ok(it[1]):
                bad.append(it)
                continue
            ok = [p for p in it[3] if _text_ok(p[0])]
            if len(ok) == len(it[3]):
                good.append(it)
                continue
            if ok:
                good.append((code, it[1], it[2], ok))
            bad.append((code, it[1], it[2], [p for p in it[3] if not _text_ok(p[0])]))
        elif code == "h":
            (good if _text_ok(it[1]) and _int_ok(it[2]) else bad).append(it)
        elif code == "b":
            texts = (it[1], it[2], it[5], it[7])
            (good if all(map(_text_ok, texts)) and _int_ok(it[3]) else bad).append(it)
        elif code == "e":
            texts = (it[3], it[4], it[6]) + (() if it[5] is None else (it[5],))
            (good if all(map(_text_ok, texts)) and _int_ok(it[1]) else bad).append(it)
        else:
            bad.append(it)
    return good, bad
