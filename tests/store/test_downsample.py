"""Server-side downsampling: bounded output that keeps first, last, extremes and non-finite
markers, answered by indexed SQL (S9)."""

from __future__ import annotations

import math
import sqlite3
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepscope.store.downsample import histogram_ids, scalar_rows
from deepscope.store.levels import build
from deepscope.store.reader import decode_value
from deepscope.store.schema import migrate
from deepscope.store.writer import classify

values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0]),
)


def _db(series: list[tuple[int, float]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    conn.execute("INSERT INTO tag (id, name, kind) VALUES (1, 'x', 'scalar')")
    conn.executemany(
        "INSERT INTO scalar (tag_id, step, wall_time, value, kind) VALUES (1, ?, 0, ?, ?)",
        [(s, *classify(v)) for s, v in series],
    )
    build(conn)  # the pyramid, as the writer keeps it
    return conn


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(st.tuples(st.integers(-1000, 1000), values), min_size=1, max_size=300),
    max_points=st.integers(1, 60),
)
def test_downsampled_scalars_keep_first_last_extremes_and_markers(
    data: list[tuple[int, float]], max_points: int
) -> None:
    conn = _db(data)
    rows = scalar_rows(conn, 1, max_points=max_points)
    ordered = sorted(enumerate(data, start=1), key=lambda r: (r[1][0], r[0]))  # (id, (step, v))
    assert 0 < len(rows) <= max_points
    assert [(r[1], r[0]) for r in rows] == sorted((r[1], r[0]) for r in rows)
    assert rows[-1][0] == ordered[-1][0]  # the latest datum is always in
    if max_points >= 2:
        assert rows[0][0] == ordered[0][0]
    if len(data) <= max_points:
        assert len(rows) == len(data)
        return
    got = [decode_value(r[3], r[4]) for r in rows]
    finite = [v for _, v in data if math.isfinite(v)]
    nonfinite = [i for i, (_, v) in enumerate(data, start=1) if not math.isfinite(v)]
    cap = (max_points - 2) // 4 if max_points - 2 >= 8 else (max_points - 2) // 2
    markers = [r for r in rows if r[4] in (1, 2, 3)]
    if max_points >= 10:
        if finite:
            assert min(finite) in got and max(finite) in got
        if len(nonfinite) <= cap:
            assert {r[0] for r in markers} >= set(nonfinite)
        else:
            assert markers  # bucketed past the cap, but never all gone
    assert len(markers) <= max(cap, 0) + 2  # the cap (+ first and last themselves)


def test_a_million_nans_answer_with_max_points_and_quickly() -> None:
    conn = _db([])
    n = 1_000_000
    steps = np.arange(n)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO scalar (tag_id, step, wall_time, value, kind) VALUES (1, ?, 0, NULL, 1)",
        ((int(s),) for s in steps),
    )
    build(conn)
    conn.execute("COMMIT")
    t = time.perf_counter()
    rows = scalar_rows(conn, 1, max_points=500)
    elapsed = time.perf_counter() - t
    assert len(rows) <= 500
    assert rows[0][1] == 0 and rows[-1][1] == n - 1
    assert elapsed < 10.0


def test_queries_use_the_step_index_not_a_full_scan() -> None:
    conn = _db([(i, float(i)) for i in range(50)])
    plans: list[str] = []
    conn.set_trace_callback(None)
    for sql, args in [
        ("SELECT COUNT(*) FROM scalar WHERE tag_id = ? AND step BETWEEN ? AND ?", (1, 0, 10)),
        (
            "SELECT id FROM scalar WHERE tag_id = ? AND step BETWEEN ? AND ? "
            "AND kind BETWEEN 1 AND 3",
            (1, 0, 10),
        ),
    ]:
        plans += [r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args)]
    assert all("USING" in p and "INDEX" in p for p in plans), plans
    assert any("scalar_nonfinite" in p for p in plans), plans


def test_step_range_limits_the_answer() -> None:
    conn = _db([(i, float(i % 7)) for i in range(1000)])
    rows = scalar_rows(conn, 1, max_points=20, start_step=100, end_step=199)
    assert len(rows) <= 20
    assert rows[0][1] == 100 and rows[-1][1] == 199
    assert all(100 <= r[1] <= 199 for r in rows)
    assert scalar_rows(conn, 1, max_points=20, start_step=5000) == []


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 400), max_points=st.integers(1, 50))
def test_histogram_steps_are_evenly_spaced_with_first_and_latest(n: int, max_points: int) -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    conn.executemany(
        "INSERT INTO histogram (tag_id, step, wall_time, edges, counts, count, n_nan, n_posinf,"
        " n_neginf) VALUES (1, ?, 0, x'', x'', 0, 0, 0, 0)",
        [(i * 3,) for i in range(n)],
    )
    ids = histogram_ids(conn, 1, max_points=max_points)
    assert len(ids) == min(n, max_points)
    if n:
        assert ids[-1] == n  # latest
        if max_points >= 2:
            assert ids[0] == 1
        gaps = np.diff(ids)
        if len(gaps):
            assert gaps.max() - gaps.min() <= 1
