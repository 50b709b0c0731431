"""Series downsampling for PostgreSQL: the contract and buckets of
`deepscope.store.downsample`, answered from the same min/max pyramid.

Every query is an index range scan on ``scalar (tag_id, step, id)``, the partial index of
non-finite rows or ``scalar_level (tag_id, level, bucket)``; a chosen point comes whole from
its raw row or its pyramid row (which keeps the referenced row's step, wall time and exact
value), so nothing is fetched back and a read costs about O(max_points) whatever the number
of points. Runs inside the caller's read transaction
(one snapshot).
"""

from __future__ import annotations

import math
from typing import Any

from deepscope.store.downsample import _pieces, _span
from deepscope.store.levels import LEVELS, shift
from deepscope.store.schema import KIND_FINITE, KIND_NEGZERO

Row = tuple[Any, ...]  # (id, step, wall_time, value, kind)
_COLS = "id, step, wall_time, value, kind"
_WHERE = "tag_id = %s AND step BETWEEN %s AND %s"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def scalar_rows(
    conn: Any,
    tag_id: int,
    *,
    max_points: int,
    start_step: int | None = None,
    end_step: int | None = None,
) -> list[Row]:
    """Rows ``(id, step, wall_time, value, kind)`` sorted by (step, id)."""
    max_points = max(1, int(max_points))
    lo = _INT64_MIN if start_step is None else max(_INT64_MIN, int(start_step))
    hi = _INT64_MAX if end_step is None else min(_INT64_MAX, int(end_step))
    if lo > hi:
        return []
    args = (tag_id, lo, hi)
    n = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM deepscope.scalar WHERE {_WHERE}"
        " ORDER BY tag_id, step, id LIMIT %s) s",  # index order: the scan stops at the limit
        (*args, max_points + 1),
    ).fetchone()[0]
    if n == 0:
        return []
    if n <= max_points:
        return list(
            conn.execute(
                f"SELECT {_COLS} FROM deepscope.scalar WHERE {_WHERE} ORDER BY step, id", args
            ).fetchall()
        )
    first = conn.execute(
        f"SELECT {_COLS} FROM deepscope.scalar WHERE {_WHERE} ORDER BY step, id LIMIT 1", args
    ).fetchone()
    last = conn.execute(
        f"SELECT {_COLS} FROM deepscope.scalar WHERE {_WHERE} ORDER BY step DESC, id DESC LIMIT 1",
        args,
    ).fetchone()
    if max_points == 1:
        return [last]
    a, b = int(first[1]), int(last[1])
    picked: dict[int, Row] = {first[0]: first, last[0]: last}
    budget = max_points - len(picked)

    cap = budget // 4 if budget >= 8 else budget // 2
    wanted: dict[int, Row] = {}  # rebuilt from pyramid rows or read from raw rows: no fetch
    if cap > 0:
        rows = conn.execute(
            f"SELECT {_COLS} FROM deepscope.scalar WHERE {_WHERE} AND kind BETWEEN 1 AND 3"
            " ORDER BY step, id LIMIT %s",
            (*args, cap + 1),
        ).fetchall()
        if len(rows) <= cap:
            for r in rows:
                picked.setdefault(r[0], r)
        else:
            for r in _Cover(conn, tag_id, a, b, max(1, cap // 3)).markers()[:cap]:
                wanted[r[0]] = r
    budget = max_points - len(picked) - len(wanted.keys() - picked.keys())
    nb = budget // 2
    if nb > 0:
        for r in _Cover(conn, tag_id, a, b, nb).extremes():
            wanted.setdefault(r[0], r)
    for i, r in wanted.items():
        picked.setdefault(i, r)
    return sorted(picked.values(), key=lambda r: (r[1], r[0]))


def _finite(row_id: int, step: int, wall: float, value: float) -> Row:
    """A scalar row rebuilt from a pyramid extreme (-0.0 is kind 4 with value 0.0)."""
    if value == 0.0 and math.copysign(1.0, value) < 0:
        return (row_id, step, wall, 0.0, KIND_NEGZERO)
    return (row_id, step, wall, value, KIND_FINITE)


class _Cover:
    """`deepscope.store.downsample._Cover` for PostgreSQL: steps [a, b] of one tag in
    `groups` buckets made of whole pyramid buckets (raw rows only at the partial ends)."""

    def __init__(self, conn: Any, tag_id: int, a: int, b: int, groups: int) -> None:
        self.conn, self.tag_id = conn, tag_id
        t = 0
        while t < LEVELS and _span(a, b, t + 1) >= groups:
            t += 1
        if t == 0 and _span(a, b, 0) > 16 * groups:
            t = 1
        self.t, self.b0, self.m = t, a >> shift(t), _span(a, b, t)
        self.groups = min(groups, self.m)
        self.pieces = _pieces(a, b, t)

    def _union(self, raw: str, level: str) -> list[Row]:
        """One query: per piece, `raw` (over scalar rows) or `level` (over pyramid rows),
        each a SELECT … FROM … WHERE {where} with group expression {g}."""
        parts: list[str] = []
        args: list[Any] = []
        for lvl, u0, u1 in self.pieces:
            head = [shift(self.t) - shift(lvl), self.b0, self.groups, self.m]
            if lvl == 0:
                g = "((step >> %s) - %s) * %s / %s"
                where = "tag_id = %s AND step BETWEEN %s AND %s"
                parts.append("(" + raw.format(g=g, where=where) + ")")
                args += [*head, self.tag_id, u0, u1]
            else:
                g = "((bucket >> %s) - %s) * %s / %s"
                where = "tag_id = %s AND level = %s AND bucket BETWEEN %s AND %s"
                parts.append("(" + level.format(g=g, where=where) + ")")
                args += [*head, self.tag_id, lvl, u0, u1]
        return list(self.conn.execute(" UNION ALL ".join(parts), args).fetchall())

    def extremes(self) -> list[Row]:
        """Rows of the finite minimum and maximum of every group."""
        out: list[Row] = []
        for col, order, better in (("min", "ASC", float.__lt__), ("max", "DESC", float.__gt__)):
            rows = self._union(
                "SELECT DISTINCT ON (g) {g} AS g, value, id, step, wall_time, kind"
                f" FROM deepscope.scalar WHERE {{where}} AND value IS NOT NULL"
                f" ORDER BY g, value {order}, id",
                f"SELECT DISTINCT ON (g) {{g}} AS g, {col}_value, {col}_id, {col}_step,"
                f" {col}_wall, -1 FROM deepscope.scalar_level WHERE {{where}}"
                f" AND {col}_value IS NOT NULL ORDER BY g, {col}_value {order}, {col}_id",
            )
            best: dict[int, tuple[float, Row]] = {}
            for g, v, i, s, w, kind in rows:
                cur = best.get(g)
                if cur is None or better(float(v), cur[0]):
                    row = _finite(i, s, w, v) if kind == -1 else (i, s, w, v, kind)
                    best[g] = (float(v), row)
            out += [row for _, row in best.values()]
        return out

    def markers(self) -> list[Row]:
        """Rows of the first NaN, +Inf and -Inf of every group (those present)."""
        first: dict[tuple[int, int], Row] = {}
        for kind, col in ((1, "nan"), (2, "pinf"), (3, "ninf")):
            rows = self._union(
                "SELECT DISTINCT ON (g) {g} AS g, id, step, wall_time FROM deepscope.scalar"
                f" WHERE {{where}} AND kind = {kind} ORDER BY g, id",
                f"SELECT DISTINCT ON (g) {{g}} AS g, {col}_id, {col}_step, {col}_wall"
                f" FROM deepscope.scalar_level WHERE {{where}} AND {col}_id IS NOT NULL"
                f" ORDER BY g, {col}_id",
            )
            for g, i, s, w in rows:
                cur = first.get((g, kind))
                if cur is None or i < cur[0]:
                    first[(g, kind)] = (i, s, w, None, kind)
        return [first[k] for k in sorted(first)]


def histogram_ids(conn: Any, tag_id: int, *, max_points: int) -> list[int]:
    """Ids of at most `max_points` histograms of a tag, evenly spaced by rank, latest kept."""
    max_points = max(1, int(max_points))
    n = conn.execute(
        "SELECT count(*) FROM deepscope.histogram WHERE tag_id = %s", (tag_id,)
    ).fetchone()[0]
    if n <= max_points:
        rows = conn.execute(
            "SELECT id FROM deepscope.histogram WHERE tag_id = %s ORDER BY step, id", (tag_id,)
        ).fetchall()
        return [int(r[0]) for r in rows]
    if max_points == 1:
        ranks = [n - 1]
    else:
        ranks = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    rows = conn.execute(
        "SELECT id FROM (SELECT id, step, row_number() OVER (ORDER BY step, id) - 1 AS rn"
        " FROM deepscope.histogram WHERE tag_id = %s) h WHERE rn = ANY(%s) ORDER BY step, id",
        (tag_id, ranks),
    ).fetchall()
    return [int(r[0]) for r in rows]
