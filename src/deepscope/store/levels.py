"""The scalar min/max pyramid (table ``scalar_level``), kept by the writer.

Level ``k`` (1 ≤ k ≤ `LEVELS`) splits the steps of a tag into aligned buckets of
``2**shift(k)`` steps, ``shift(k) = 4 * k + 1`` (32 steps at level 1, then 16 times wider per
level): ``bucket = step >> shift(k)``, an arithmetic shift, so negative steps floor like
Python's ``>>``. Each row holds, for the scalar rows of its bucket: how many (``n``),
the finite minimum and maximum with the id of a row holding each (``min_id`` / ``max_id``,
NULL when the bucket has no finite value), and the smallest id of each non-finite kind
(``nan_id``, ``pinf_id``, ``ninf_id``). Level 15 buckets are 2**61 steps wide, so any int64
step range is covered by at most 8 of them.

`fold` runs inside the writer's ``BEGIN IMMEDIATE`` right after the batch's scalar rows are
inserted, so the pyramid and the rows are committed together (readers never see one without
the other). Level 1 is aggregated from the batch the writer still holds in memory (its rows
got the consecutive ids after the old maximum; a bulk rebuild lets SQLite aggregate with
``GROUP BY`` instead), the higher levels are rolled up from those level-1 aggregates, and
everything is merged into the table with one ``INSERT … ON CONFLICT DO UPDATE`` per touched
bucket (about one per 30 new points).
"""

from __future__ import annotations

import sqlite3
from typing import Any

BITS = 4  # 16 buckets of a level make one of the next
BASE = 1  # level 1: 2**(BITS + BASE) = 32 steps per bucket
LEVELS = 15  # level 15: 2**61 steps per bucket


def shift(level: int) -> int:
    """log2 of the bucket width of `level` (0: single steps)."""
    return BITS * level + BASE if level > 0 else 0


S1 = shift(1)

LEVEL_SCHEMA = """
CREATE TABLE scalar_level (
    tag_id INTEGER NOT NULL,
    level INTEGER NOT NULL,       -- 1..15: buckets of 2**(4 * level + 1) steps
    bucket INTEGER NOT NULL,      -- step >> (4 * level + 1)
    n INTEGER NOT NULL,           -- scalar rows in the bucket
    min_value REAL,               -- finite minimum (NULL: no finite value)
    min_id INTEGER,               -- scalar.id of a row holding it
    max_value REAL,
    max_id INTEGER,
    nan_id INTEGER,               -- smallest scalar.id of each non-finite kind, or NULL
    pinf_id INTEGER,
    ninf_id INTEGER,
    PRIMARY KEY (tag_id, level, bucket)
) WITHOUT ROWID;
"""

# one bucket's aggregate: [n, min_value, min_id, max_value, max_id, nan_id, pinf_id, ninf_id]
Agg = list[Any]

_MIN_SQL = (
    f"SELECT tag_id, step >> {S1}, COUNT(*), MIN(value), id FROM scalar NOT INDEXED"
    f" WHERE id > ? GROUP BY tag_id, step >> {S1}"
)  # a lone MIN() makes SQLite take the bare `id` from the row holding the minimum
_MAX_SQL = (
    f"SELECT tag_id, step >> {S1}, MAX(value), id FROM scalar NOT INDEXED"
    f" WHERE id > ? GROUP BY tag_id, step >> {S1}"
)
_NONFINITE_SQL = (
    f"SELECT tag_id, step >> {S1}, kind, MIN(id) FROM scalar NOT INDEXED"
    f" WHERE id > ? AND kind BETWEEN 1 AND 3 GROUP BY tag_id, step >> {S1}, kind"
)
_UPSERT = """
INSERT INTO scalar_level (tag_id, level, bucket, n, min_value, min_id, max_value, max_id,
                          nan_id, pinf_id, ninf_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tag_id, level, bucket) DO UPDATE SET
    n = n + excluded.n,
    min_id = CASE WHEN excluded.min_value < min_value OR min_value IS NULL
             THEN excluded.min_id ELSE min_id END,
    min_value = CASE WHEN excluded.min_value < min_value OR min_value IS NULL
                THEN excluded.min_value ELSE min_value END,
    max_id = CASE WHEN excluded.max_value > max_value OR max_value IS NULL
             THEN excluded.max_id ELSE max_id END,
    max_value = CASE WHEN excluded.max_value > max_value OR max_value IS NULL
                THEN excluded.max_value ELSE max_value END,
    nan_id = coalesce(min(nan_id, excluded.nan_id), nan_id, excluded.nan_id),
    pinf_id = coalesce(min(pinf_id, excluded.pinf_id), pinf_id, excluded.pinf_id),
    ninf_id = coalesce(min(ninf_id, excluded.ninf_id), ninf_id, excluded.ninf_id)
"""


def has_levels(conn: sqlite3.Connection) -> bool:
    """True when the store has the pyramid (schema ≥ 2); older stores are read by scanning."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'scalar_level'"
    ).fetchone()
    return row is not None


def _merge(into: Agg, a: Agg) -> None:
    into[0] += a[0]
    if a[1] is not None and (into[1] is None or a[1] < into[1]):
        into[1], into[2] = a[1], a[2]
    if a[3] is not None and (into[3] is None or a[3] > into[3]):
        into[3], into[4] = a[3], a[4]
    for i in (5, 6, 7):
        if a[i] is not None and (into[i] is None or a[i] < into[i]):
            into[i] = a[i]


def fold(
    conn: sqlite3.Connection,
    after_id: int,
    rows: list[tuple[Any, ...]] | None = None,
    *,
    nonfinite: bool = True,
) -> int:
    """Fold the scalar rows with ``id > after_id`` into the pyramid (inside the caller's write
    transaction). `rows`: those rows as just inserted, ``(tag_id, step, wall_time, value,
    kind)`` in id order, aggregated here without reading them back when their ids are
    ``after_id + 1 …`` (SQLite's rowids in one transaction); otherwise SQLite aggregates
    them. `nonfinite`: whether they may hold NaN/±Inf (skips a query when not).
    Returns the number of pyramid rows written."""
    level1: dict[tuple[int, int], Agg] | None = None
    if rows is not None:
        top = conn.execute("SELECT MAX(id) FROM scalar").fetchone()[0]
        if top == after_id + len(rows):
            level1 = _level1_of(rows, after_id + 1)
    if level1 is None:
        level1 = _level1_sql(conn, after_id, nonfinite)
    out: list[tuple[Any, ...]] = []
    current = level1
    for level in range(1, LEVELS + 1):
        out += [(tid, level, b, *agg) for (tid, b), agg in current.items()]
        if level == LEVELS:
            break
        parent: dict[tuple[int, int], Agg] = {}
        for (tid, b), agg in current.items():
            key = (tid, b >> BITS)
            p = parent.get(key)
            if p is None:
                parent[key] = list(agg)
            else:
                _merge(p, agg)
        current = parent
    conn.executemany(_UPSERT, out)
    return len(out)


def _level1_of(rows: list[tuple[Any, ...]], first_id: int) -> dict[tuple[int, int], Agg]:
    level1: dict[tuple[int, int], Agg] = {}
    get = level1.get
    for i, (tid, step, _wall, v, kind) in enumerate(rows, first_id):
        key = (tid, step >> S1)
        agg = get(key)
        if agg is None:
            agg = level1[key] = [0, None, None, None, None, None, None, None]
        agg[0] += 1
        if v is not None:
            if agg[1] is None:
                agg[1], agg[2], agg[3], agg[4] = v, i, v, i
            elif v < agg[1]:
                agg[1], agg[2] = v, i
            elif v > agg[3]:
                agg[3], agg[4] = v, i
        elif 1 <= kind <= 3 and agg[4 + kind] is None:
            agg[4 + kind] = i
    return level1


def _level1_sql(
    conn: sqlite3.Connection, after_id: int, nonfinite: bool
) -> dict[tuple[int, int], Agg]:
    level1: dict[tuple[int, int], Agg] = {}
    for tid, b, n, mn, mid in conn.execute(_MIN_SQL, (after_id,)):
        level1[(tid, b)] = [n, mn, mid if mn is not None else None, None, None, None, None, None]
    for tid, b, mx, xid in conn.execute(_MAX_SQL, (after_id,)):
        if mx is not None:
            agg = level1[(tid, b)]
            agg[3], agg[4] = mx, xid
    if nonfinite:
        for tid, b, kind, first in conn.execute(_NONFINITE_SQL, (after_id,)):
            level1[(tid, b)][4 + kind] = first
    return level1


def build(conn: sqlite3.Connection) -> int:
    """(Re)build the whole pyramid from the scalar rows (migration of an older store)."""
    conn.execute("DELETE FROM scalar_level")
    return fold(conn, 0)
