"""The min/max pyramid of `deepscope.store.levels`, for PostgreSQL.

The same levels and buckets (``bucket = step >> shift(level)``); each row also keeps the
step of every row it references (``min_step``, ``max_step``, ``nan_step``...), so a read
fetches the chosen rows through the primary key ``(tag_id, step, id)``. `fold_rows`
aggregates a batch in memory (the writer assigned its ids) and `upsert` merges the result
inside the batch's transaction, keys sorted so concurrent writers never deadlock.
"""

from __future__ import annotations

from typing import Any

from deepscope.store.levels import BITS, LEVELS, S1

# one bucket: [n, min_v, min_id, min_step, max_v, max_id, max_step,
#              nan_id, nan_step, pinf_id, pinf_step, ninf_id, ninf_step]
Agg = list[Any]

UPSERT = """
INSERT INTO deepscope.scalar_level AS l (tag_id, level, bucket, n,
    min_value, min_id, min_step, max_value, max_id, max_step,
    nan_id, nan_step, pinf_id, pinf_step, ninf_id, ninf_step)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (tag_id, level, bucket) DO UPDATE SET
    n = l.n + excluded.n,
    min_value = CASE WHEN l.min_value IS NULL OR excluded.min_value < l.min_value
                THEN excluded.min_value ELSE l.min_value END,
    min_id = CASE WHEN l.min_value IS NULL OR excluded.min_value < l.min_value
             THEN excluded.min_id ELSE l.min_id END,
    min_step = CASE WHEN l.min_value IS NULL OR excluded.min_value < l.min_value
               THEN excluded.min_step ELSE l.min_step END,
    max_value = CASE WHEN l.max_value IS NULL OR excluded.max_value > l.max_value
                THEN excluded.max_value ELSE l.max_value END,
    max_id = CASE WHEN l.max_value IS NULL OR excluded.max_value > l.max_value
             THEN excluded.max_id ELSE l.max_id END,
    max_step = CASE WHEN l.max_value IS NULL OR excluded.max_value > l.max_value
               THEN excluded.max_step ELSE l.max_step END,
    nan_step = CASE WHEN l.nan_id IS NULL OR excluded.nan_id < l.nan_id
               THEN excluded.nan_step ELSE l.nan_step END,
    nan_id = CASE WHEN l.nan_id IS NULL OR excluded.nan_id < l.nan_id
             THEN excluded.nan_id ELSE l.nan_id END,
    pinf_step = CASE WHEN l.pinf_id IS NULL OR excluded.pinf_id < l.pinf_id
                THEN excluded.pinf_step ELSE l.pinf_step END,
    pinf_id = CASE WHEN l.pinf_id IS NULL OR excluded.pinf_id < l.pinf_id
              THEN excluded.pinf_id ELSE l.pinf_id END,
    ninf_step = CASE WHEN l.ninf_id IS NULL OR excluded.ninf_id < l.ninf_id
                THEN excluded.ninf_step ELSE l.ninf_step END,
    ninf_id = CASE WHEN l.ninf_id IS NULL OR excluded.ninf_id < l.ninf_id
              THEN excluded.ninf_id ELSE l.ninf_id END
"""


def _merge(into: Agg, a: Agg) -> None:
    into[0] += a[0]
    if a[1] is not None and (into[1] is None or a[1] < into[1]):
        into[1:4] = a[1:4]
    if a[4] is not None and (into[4] is None or a[4] > into[4]):
        into[4:7] = a[4:7]
    for i in (7, 9, 11):
        if a[i] is not None and (into[i] is None or a[i] < into[i]):
            into[i], into[i + 1] = a[i], a[i + 1]


def level1(rows: list[tuple[Any, ...]]) -> dict[tuple[int, int], Agg]:
    """Level-1 aggregates of rows ``(tag_id, step, id, wall_time, value, kind)`` in id order."""
    out: dict[tuple[int, int], Agg] = {}
    get = out.get
    for tid, step, i, _wall, v, kind in rows:
        key = (tid, step >> S1)
        agg = get(key)
        if agg is None:
            agg = out[key] = [0, None, None, None, None, None, None, None, None, None, None,
                              None, None]  # fmt: skip
        agg[0] += 1
        if v is not None:
            if agg[1] is None:
                agg[1:7] = (v, i, step, v, i, step)
            elif v < agg[1]:
                agg[1], agg[2], agg[3] = v, i, step
            elif v > agg[4]:
                agg[4], agg[5], agg[6] = v, i, step
        elif 1 <= kind <= 3:
            slot = 5 + 2 * kind  # 7, 9, 11
            if agg[slot] is None:
                agg[slot], agg[slot + 1] = i, step
    return out


def fold_rows(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Pyramid rows (all levels) for a batch of scalar rows, sorted by key."""
    return roll_up(level1(rows))


def roll_up(current: dict[tuple[int, int], Agg]) -> list[tuple[Any, ...]]:
    """Pyramid rows of every level from the level-1 aggregates, sorted by key."""
    out: list[tuple[Any, ...]] = []
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
    out.sort(key=lambda r: (r[0], r[1], r[2]))
    return out


_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS level_stage (LIKE deepscope.scalar_level)"
    " ON COMMIT DELETE ROWS"
)
_MERGE = UPSERT.split("VALUES")[0] + (
    "SELECT * FROM level_stage ORDER BY tag_id, level, bucket ON CONFLICT"
    + UPSERT.split("ON CONFLICT", 1)[1]
)
_COPY_STAGE = "COPY level_stage FROM STDIN"


def upsert_levels(conn: Any, rows: list[tuple[Any, ...]]) -> None:
    """Merge pyramid rows into ``scalar_level`` (inside the caller's transaction): COPY into
    a temporary table, then one ``INSERT … SELECT … ON CONFLICT`` in key order."""
    if not rows:
        return
    if len(rows) < 64:
        conn.cursor().executemany(UPSERT, rows)
        return
    conn.execute(_STAGE)
    with conn.cursor().copy(_COPY_STAGE) as copy:
        for row in rows:
            copy.write_row(row)
    conn.execute(_MERGE)
