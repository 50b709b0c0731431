"""Series downsampling answered in SQL (indexed range scans; no whole series in Python).

Scalars: at most `max_points` rows, always the first and the latest in range, the finite
minimum and maximum of each step bucket (so the global extremes are in), and every
non-finite value as a marker up to a cap (bucketed past the cap). Histograms: at most
`max_points` rows evenly spaced by rank, the first and the latest included.
"""

from __future__ import annotations

import sqlite3
from typing import Any

# columns read for a scalar point
_COLS = "id, step, wall_time, value, kind"


def scalar_rows(
    conn: sqlite3.Connection,
    tag_id: int,
    *,
    max_points: int,
    start_step: int | None = None,
    end_step: int | None = None,
) -> list[tuple[Any, ...]]:
    """Rows ``(id, step, wall_time, value, kind)`` sorted by (step, id). Run inside one read
    transaction so every query sees the same snapshot."""
    max_points = max(1, int(max_points))
    lo = -(2**63) if start_step is None else int(start_step)
    hi = 2**63 - 1 if end_step is None else int(end_step)
    if lo > hi:
        return []
    where = "tag_id = ? AND step BETWEEN ? AND ?"
    args = (tag_id, lo, hi)
    n = conn.execute(f"SELECT COUNT(*) FROM scalar WHERE {where}", args).fetchone()[0]
    if n == 0:
        return []
    if n <= max_points:
        return conn.execute(
            f"SELECT {_COLS} FROM scalar WHERE {where} ORDER BY step, id", args
        ).fetchall()
    last = conn.execute(
        f"SELECT {_COLS} FROM scalar WHERE {where} ORDER BY step DESC, id DESC LIMIT 1", args
    ).fetchone()
    if max_points == 1:
        return [last]
    first = conn.execute(
        f"SELECT {_COLS} FROM scalar WHERE {where} ORDER BY step, id LIMIT 1", args
    ).fetchone()
    s_lo, s_hi = int(first[1]), int(last[1])
    span = float(s_hi - s_lo + 1)
    picked: dict[int, tuple[Any, ...]] = {first[0]: first, last[0]: last}
    budget = max_points - len(picked)

    # non-finite markers (partial index scalar_nonfinite), capped at a quarter of the budget
    cap = budget // 4 if budget >= 8 else budget // 2
    if cap > 0:
        nf_where = f"{where} AND kind BETWEEN 1 AND 3"
        n_nf = conn.execute(f"SELECT COUNT(*) FROM scalar WHERE {nf_where}", args).fetchone()[0]
        if n_nf:
            if n_nf <= cap:
                rows = conn.execute(
                    f"SELECT {_COLS} FROM scalar WHERE {nf_where} ORDER BY step, id", args
                ).fetchall()
            else:
                nb = max(1, cap // 3)  # one marker per (bucket, kind): at most 3 per bucket
                rows = conn.execute(
                    f"SELECT {_COLS} FROM scalar WHERE id IN ("
                    f" SELECT MIN(id) FROM scalar WHERE {nf_where}"
                    f" GROUP BY CAST((step - ?) * ? / ? AS INTEGER), kind)"
                    " ORDER BY step, id",
                    (*args, s_lo, float(nb), span),
                ).fetchall()[:cap]
            for r in rows:
                picked.setdefault(r[0], r)
    budget = max_points - len(picked)

    # min and max of finite values per bucket: one row each per bucket
    nb = budget // 2
    if nb > 0:
        fin_where = f"{where} AND value IS NOT NULL"
        bucket = "CAST((step - ?) * ? / ? AS INTEGER)"
        for agg in ("MIN", "MAX"):
            # a single MIN()/MAX() makes SQLite take the bare columns from that row
            rows = conn.execute(
                f"SELECT id, step, wall_time, {agg}(value), kind FROM scalar WHERE {fin_where}"
                f" GROUP BY {bucket}",
                (*args, s_lo, float(nb), span),
            ).fetchall()
            for r in rows:
                picked.setdefault(r[0], r)
    out = sorted(picked.values(), key=lambda r: (r[1], r[0]))
    if len(out) > max_points:  # only when ties put a bucket's min and max on one row twice
        keep = {first[0], last[0]}
        extra = [r for r in out if r[0] not in keep][: max_points - len(keep)]
        out = sorted([first, last, *extra], key=lambda r: (r[1], r[0]))
    return out


def histogram_ids(conn: sqlite3.Connection, tag_id: int, *, max_points: int) -> list[int]:
    """Ids of at most `max_points` histograms of a tag, evenly spaced by rank, latest kept."""
    max_points = max(1, int(max_points))
    n = conn.execute("SELECT COUNT(*) FROM histogram WHERE tag_id = ?", (tag_id,)).fetchone()[0]
    if n <= max_points:
        return [
            r[0]
            for r in conn.execute(
                "SELECT id FROM histogram WHERE tag_id = ? ORDER BY step, id", (tag_id,)
            )
        ]
    if max_points == 1:
        ranks = [n - 1]
    else:
        ranks = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    import json

    rows = conn.execute(
        "SELECT id FROM ("
        " SELECT id, step, ROW_NUMBER() OVER (ORDER BY step, id) - 1 AS rn"
        " FROM histogram WHERE tag_id = ?)"
        " WHERE rn IN (SELECT value FROM json_each(?)) ORDER BY step, id",
        (tag_id, json.dumps(ranks)),
    ).fetchall()
    return [r[0] for r in rows]
