"""The min/max pyramid of `deepscope.store.levels`, for PostgreSQL.

The same levels and buckets (``bucket = step >> shift(level)``); each row also keeps the
step and wall time of every row it references (``min_step``, ``min_wall``, ``nan_step``...)
and the minimum and maximum exactly (-0.0 included), so a read rebuilds the chosen points
from the pyramid rows alone. The writer aggregates level 1 from a batch in memory (it
assigned the ids), `roll_up` makes the higher levels and `upsert_levels` merges them inside
the batch's transaction, keys sorted so concurrent writers never deadlock.
"""

from __future__ import annotations

from typing import Any

from deepscope.store.levels import BITS, LEVELS

# one bucket: [n, min_v, min_id, min_step, max_v, max_id, max_step,
#              nan_id, nan_step, pinf_id, pinf_step, ninf_id, ninf_step,
#              min_wall, max_wall, nan_wall, pinf_wall, ninf_wall]
# (min_v / max_v keep -0.0 as such: the point is rebuilt from the pyramid row alone)
Agg = list[Any]
AGG_SIZE = 18
_COLS = (
    "tag_id, level, bucket, n, min_value, min_id, min_step, max_value, max_id, max_step,"
    " nan_id, nan_step, pinf_id, pinf_step, ninf_id, ninf_step,"
    " min_wall, max_wall, nan_wall, pinf_wall, ninf_wall"
)


def _take(col: str, cond: str) -> str:
    return f"{col} = CASE WHEN {cond} THEN excluded.{col} ELSE l.{col} END"


_MIN = "l.min_value IS NULL OR excluded.min_value < l.min_value"
_MAX = "l.max_value IS NULL OR excluded.max_value > l.max_value"
_SETS = [
    "n = l.n + excluded.n",
    *(_take(c, _MIN) for c in ("min_value", "min_id", "min_step", "min_wall")),
    *(_take(c, _MAX) for c in ("max_value", "max_id", "max_step", "max_wall")),
    *(
        _take(f"{k}_{c}", f"l.{k}_id IS NULL OR excluded.{k}_id < l.{k}_id")
        for k in ("nan", "pinf", "ninf")
        for c in ("step", "wall", "id")  # id last: the others compare against the old id
    ),
]
_CONFLICT = " ON CONFLICT (tag_id, level, bucket) DO UPDATE SET " + ", ".join(_SETS)
UPSERT = (
    f"INSERT INTO deepscope.scalar_level AS l ({_COLS}) VALUES ({', '.join(['%s'] * 21)})"
    + _CONFLICT
)


def merge_sql(cols: str, select: str) -> str:
    """``INSERT INTO scalar_level (cols) <select> ON CONFLICT …``: merges the rows of
    `select` (columns `cols`, ordered by key) into the pyramid."""
    return f"INSERT INTO deepscope.scalar_level AS l ({cols}) {select}" + _CONFLICT


def new_agg() -> Agg:
    """An empty bucket aggregate."""
    return [0] + [None] * (AGG_SIZE - 1)


def _merge(into: Agg, a: Agg) -> None:
    into[0] += a[0]
    if a[1] is not None and (into[1] is None or a[1] < into[1]):
        into[1:4] = a[1:4]
        into[13] = a[13]
    if a[4] is not None and (into[4] is None or a[4] > into[4]):
        into[4:7] = a[4:7]
        into[14] = a[14]
    for i, w in ((7, 15), (9, 16), (11, 17)):
        if a[i] is not None and (into[i] is None or a[i] < into[i]):
            into[i], into[i + 1], into[w] = a[i], a[i + 1], a[w]


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
_MERGE = (
    f"INSERT INTO deepscope.scalar_level AS l ({_COLS}) SELECT {_COLS} FROM level_stage"
    " ORDER BY tag_id, level, bucket" + _CONFLICT
)
_COPY_STAGE = f"COPY level_stage ({_COLS}) FROM STDIN"


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
