"""Series downsampling answered in SQL (indexed range scans; no whole series in Python).

Scalars: at most `max_points` rows, always the first and the latest in range, the finite
minimum and maximum of each step bucket (so the global extremes are in), and every
non-finite value as a marker up to a cap (bucketed past the cap). Every row returned is a
stored row. The buckets come from the min/max pyramid (`deepscope.store.levels`): the range
is covered by whole pyramid buckets (coarse in the middle, finer towards the edges, raw
rows only inside the partial level-1 buckets at both ends), so a read costs about
O(max_points) whatever the number of points; stores without the pyramid (schema 1, read
by a reader that never migrates) are scanned with ``GROUP BY``. Histograms: at most
`max_points` rows evenly spaced by rank, the first and the latest included.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from deepscope.store.levels import LEVELS, has_levels, shift

# columns read for a scalar point
_COLS = "id, step, wall_time, value, kind"
Row = tuple[Any, ...]


def _ends(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> tuple[Any, Any]:
    """The first and the latest row (by step, then id) matching `where`."""
    first = conn.execute(
        f"SELECT {_COLS} FROM scalar WHERE {where} ORDER BY step, id LIMIT 1", args
    ).fetchone()
    last = conn.execute(
        f"SELECT {_COLS} FROM scalar WHERE {where} ORDER BY step DESC, id DESC LIMIT 1", args
    ).fetchone()
    return first, last


def scalar_rows(
    conn: sqlite3.Connection,
    tag_id: int,
    *,
    max_points: int,
    start_step: int | None = None,
    end_step: int | None = None,
) -> list[Row]:
    """Rows ``(id, step, wall_time, value, kind)`` sorted by (step, id). Run inside one read
    transaction so every query sees the same snapshot."""
    max_points = max(1, int(max_points))
    lo = -(2**63) if start_step is None else max(-(2**63), int(start_step))
    hi = 2**63 - 1 if end_step is None else min(2**63 - 1, int(end_step))
    if lo > hi:
        return []
    if not has_levels(conn):
        return scan_scalar_rows(conn, tag_id, max_points=max_points, start_step=lo, end_step=hi)
    where = "tag_id = ? AND step BETWEEN ? AND ?"
    args = (tag_id, lo, hi)
    n = conn.execute(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM scalar WHERE {where} LIMIT ?)",
        (*args, max_points + 1),
    ).fetchone()[0]  # counts at most max_points + 1 rows: O(max_points), not O(n)
    if n == 0:
        return []
    if n <= max_points:
        return conn.execute(
            f"SELECT {_COLS} FROM scalar WHERE {where} ORDER BY step, id", args
        ).fetchall()
    first, last = _ends(conn, where, args)
    if max_points == 1:
        return [last]
    a, b = int(first[1]), int(last[1])
    picked: dict[int, Row] = {first[0]: first, last[0]: last}
    budget = max_points - len(picked)

    # non-finite markers (partial index scalar_nonfinite), capped at a quarter of the budget
    cap = budget // 4 if budget >= 8 else budget // 2
    wanted: list[int] = []
    if cap > 0:
        rows = conn.execute(
            f"SELECT {_COLS} FROM scalar WHERE {where} AND kind BETWEEN 1 AND 3"
            " ORDER BY step, id LIMIT ?",
            (*args, cap + 1),
        ).fetchall()
        if len(rows) <= cap:
            for r in rows:
                picked.setdefault(r[0], r)
        else:  # one marker per (bucket, kind): at most 3 per bucket
            wanted += _Cover(conn, tag_id, a, b, max(1, cap // 3)).markers()[:cap]
    budget = max_points - len(picked) - len(set(wanted) - picked.keys())

    # min and max of finite values per bucket: one row each per bucket
    nb = budget // 2
    if nb > 0:
        wanted += _Cover(conn, tag_id, a, b, nb).extremes()
    missing = sorted(set(wanted) - picked.keys())
    if missing:
        for r in conn.execute(
            f"SELECT {_COLS} FROM scalar WHERE id IN (SELECT value FROM json_each(?))",
            (json.dumps(missing),),
        ):
            picked[r[0]] = r
    return sorted(picked.values(), key=lambda r: (r[1], r[0]))


class _Cover:
    """Steps ``[a, b]`` of one tag cut into `groups` buckets of whole pyramid buckets.

    Level ``t`` is the coarsest whose buckets in range still number at least `groups` (fewer
    than 16 * groups + 16 of them; level 1 rather than raw steps when those would be more
    than 16 * groups, which leaves at least groups / 2). The range is covered by aligned
    pieces: level-t buckets in the middle, at most 15 buckets of each lower level at each
    end, and raw rows inside the partial level-1 buckets at the ends (< 32 steps each).
    Group ``g`` holds level-t buckets ``b0 + [g * m / groups, (g + 1) * m / groups)``, so
    each piece lies in one group and the minimum of a group is exact.
    """

    def __init__(self, conn: sqlite3.Connection, tag_id: int, a: int, b: int, groups: int):
        self.conn, self.tag_id = conn, tag_id
        t = 0
        while t < LEVELS and _span(a, b, t + 1) >= groups:
            t += 1
        if t == 0 and _span(a, b, 0) > 16 * groups:
            t = 1
        self.t, self.b0, self.m = t, a >> shift(t), _span(a, b, t)
        self.groups = min(groups, self.m)
        self.pieces = _pieces(a, b, t)

    def _query(self, raw: str, raw_where: str, level: str, level_where: str) -> list[Row]:
        """Per group and piece: ``raw`` over the scalar rows of the raw pieces, ``level``
        over the pyramid rows of the others; rows ``(group, ...)``."""
        out: list[Row] = []
        for lvl, u0, u1 in self.pieces:
            head = (shift(self.t) - shift(lvl), self.b0, self.groups, self.m, self.tag_id)
            if lvl == 0:
                sql = (
                    f"SELECT ((step >> ?) - ?) * ? / ? AS g, {raw} FROM scalar"
                    f" WHERE tag_id = ? AND step BETWEEN ? AND ? {raw_where} GROUP BY g"
                )
                args: tuple[Any, ...] = (*head, u0, u1)
            else:
                sql = (
                    f"SELECT ((bucket >> ?) - ?) * ? / ? AS g, {level} FROM scalar_level"
                    f" WHERE tag_id = ? AND level = ? AND bucket BETWEEN ? AND ? {level_where}"
                    " GROUP BY g"
                )
                args = (*head, lvl, u0, u1)
            out += self.conn.execute(sql, args).fetchall()
        return out

    def extremes(self) -> list[int]:
        """Ids of the finite minimum and maximum of every group."""
        ids: list[int] = []
        for fn, col, better in (("MIN", "min", float.__lt__), ("MAX", "max", float.__gt__)):
            best: dict[int, tuple[float, int]] = {}
            # a lone MIN()/MAX() makes SQLite take the bare id from the row holding it
            for g, v, i in self._query(
                f"{fn}(value), id",
                "AND value IS NOT NULL",
                f"{fn}({col}_value), {col}_id",
                f"AND {col}_value IS NOT NULL",
            ):
                cur = best.get(g)
                if cur is None or better(float(v), cur[0]):
                    best[g] = (float(v), i)
            ids += [i for _, i in best.values()]
        return ids

    def markers(self) -> list[int]:
        """Ids of the first NaN, +Inf and -Inf of every group (those present)."""
        first: dict[tuple[int, int], int] = {}
        for g, nan, pinf, ninf in self._query(
            "MIN(CASE kind WHEN 1 THEN id END), MIN(CASE kind WHEN 2 THEN id END),"
            " MIN(CASE kind WHEN 3 THEN id END)",
            "AND kind BETWEEN 1 AND 3",
            "MIN(nan_id), MIN(pinf_id), MIN(ninf_id)",
            "AND (nan_id IS NOT NULL OR pinf_id IS NOT NULL OR ninf_id IS NOT NULL)",
        ):
            for kind, i in ((1, nan), (2, pinf), (3, ninf)):
                if i is not None and i < first.get((g, kind), i + 1):
                    first[(g, kind)] = i
        return [first[k] for k in sorted(first)]


def _span(a: int, b: int, level: int) -> int:
    """Number of level-`level` buckets from step a to step b."""
    return (b >> shift(level)) - (a >> shift(level)) + 1


def _pieces(a: int, b: int, top: int) -> list[tuple[int, int, int]]:
    """``(level, first, last)`` inclusive ranges of aligned units (steps at level 0, level
    buckets above) that exactly cover steps [a, b], using levels up to `top`."""
    out: list[tuple[int, int, int]] = []
    lvl, lo, hi = 0, a, b
    while lvl < top:
        k = shift(lvl + 1) - shift(lvl)  # a parent is 2**k units
        plo = -((-lo) >> k)  # first parent wholly inside
        phi = ((hi + 1) >> k) - 1  # last parent wholly inside
        if plo > phi:
            out.append((lvl, lo, hi))
            return out
        if lo < plo << k:
            out.append((lvl, lo, (plo << k) - 1))
        if hi > ((phi + 1) << k) - 1:
            out.append((lvl, (phi + 1) << k, hi))
        lvl, lo, hi = lvl + 1, plo, phi
    out.append((top, lo, hi))
    return out


def scan_scalar_rows(
    conn: sqlite3.Connection,
    tag_id: int,
    *,
    max_points: int,
    start_step: int | None = None,
    end_step: int | None = None,
) -> list[tuple[Any, ...]]:
    """`scalar_rows` for a store without the pyramid (schema 1): buckets of the whole step
    range by ``GROUP BY``, O(points in range)."""
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
    first, last = _ends(conn, where, args)
    if max_points == 1:
        return [last]
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
