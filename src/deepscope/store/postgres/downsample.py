"""Series downsampling for PostgreSQL: the contract and buckets of
`deepscope.store.downsample`, answered from the same min/max pyramid.

Every query is an index range scan on ``scalar (tag_id, step, id)``, the partial index of
non-finite rows or ``scalar_level (tag_id, level, bucket)``; the chosen rows are fetched
back by primary key (the pyramid keeps each referenced row's step), so a read costs about
O(max_points) whatever the number of points. Runs inside the caller's read transaction
(one snapshot).
"""

from __future__ import annotations

from typing import Any

from deepscope.store.downsample import _pieces, _span
from deepscope.store.levels import LEVELS, shift

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
    wanted: dict[int, int] = {}  # id -> step
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
            for i, s in _Cover(conn, tag_id, a, b, max(1, cap // 3)).markers()[:cap]:
                wanted[i] = s
    budget = max_points - len(picked) - len(wanted.keys() - picked.keys())
    nb = budget // 2
    if nb > 0:
        for i, s in _Cover(conn, tag_id, a, b, nb).extremes():
            wanted[i] = s
    missing = [(i, s) for i, s in wanted.items() if i not in picked]
    if missing:
        for r in conn.execute(  # one primary-key lookup per row, whatever the statistics
            f"SELECT x.* FROM unnest(%s::bigint[], %s::bigint[]) AS u(i, st) CROSS JOIN LATERAL"
            f" (SELECT {_COLS} FROM deepscope.scalar s"
            "  WHERE s.tag_id = %s AND s.step = u.st AND s.id = u.i) x",
            ([m[0] for m in missing], [m[1] for m in missing], tag_id),
        ).fetchall():
            picked[r[0]] = r
    return sorted(picked.values(), key=lambda r: (r[1], r[0]))


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

    def extremes(self) -> list[tuple[int, int]]:
        """(id, step) of the finite minimum and maximum of every group."""
        out: list[tuple[int, int]] = []
        for col, order, better in (("min", "ASC", float.__lt__), ("max", "DESC", float.__gt__)):
            rows = self._union(
                "SELECT DISTINCT ON (g) {g} AS g, value, id, step FROM deepscope.scalar"
                f" WHERE {{where}} AND value IS NOT NULL ORDER BY g, value {order}, id",
                f"SELECT DISTINCT ON (g) {{g}} AS g, {col}_value, {col}_id, {col}_step"
                f" FROM deepscope.scalar_level WHERE {{where}} AND {col}_value IS NOT NULL"
                f" ORDER BY g, {col}_value {order}, {col}_id",
            )
            best: dict[int, tuple[float, int, int]] = {}
            for g, v, i, s in rows:
                cur = best.get(g)
                if cur is None or better(float(v), cur[0]):
                    best[g] = (float(v), int(i), int(s))
            out += [(i, s) for _, i, s in best.values()]
        return out

    def markers(self) -> list[tuple[int, int]]:
        """(id, step) of the first NaN, +Inf and -Inf of every group (those present)."""
        first: dict[tuple[int, int], tuple[int, int]] = {}
        for kind, col in ((1, "nan"), (2, "pinf"), (3, "ninf")):
            rows = self._union(
                "SELECT DISTINCT ON (g) {g} AS g, id, step FROM deepscope.scalar"
                f" WHERE {{where}} AND kind = {kind} ORDER BY g, id",
                f"SELECT DISTINCT ON (g) {{g}} AS g, {col}_id, {col}_step"
                f" FROM deepscope.scalar_level WHERE {{where}} AND {col}_id IS NOT NULL"
                f" ORDER BY g, {col}_id",
            )
            for g, i, s in rows:
                cur = first.get((g, kind))
                if cur is None or i < cur[0]:
                    first[(g, kind)] = (int(i), int(s))
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
