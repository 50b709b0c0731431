"""The min/max pyramid (store/levels.py) and the reads built on it (store/downsample.py),
checked against brute force on random series: NaN/±Inf, duplicate, unordered, negative and
huge steps, random zoom ranges; and the migration of a schema-1 store."""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deepscope.store
from deepscope.store.downsample import scalar_rows, scan_scalar_rows
from deepscope.store.levels import LEVELS, build, shift
from deepscope.store.reader import decode_value
from deepscope.store.rows import insert_items
from deepscope.store.schema import DB_NAME, SCHEMA, SCHEMA_VERSION, connect_writer, migrate
from deepscope.store.writer import RunWriter, classify

I64 = 2**63
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.floats(-10, 10),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.0]),
)
steps = st.one_of(
    st.integers(-40, 40),  # many duplicates
    st.integers(-(2**20), 2**20),
    st.integers(-I64, I64 - 1),  # huge and negative, to the int64 limits
)
series = st.lists(st.tuples(steps, values), min_size=1, max_size=250)


def _write(data: list[tuple[int, float]], cuts: list[int], tags: int = 2) -> sqlite3.Connection:
    """`data` logged through the writer's insert path in batches split at `cuts`, spread
    over `tags` tags (tag 'x' gets every even datum)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    ids: dict[tuple[str, str], int] = {}
    items = [("s", s, float(i), ((("x", "y")[i % tags], v),)) for i, (s, v) in enumerate(data)]
    bounds = sorted({0, len(items), *(c % (len(items) + 1) for c in cuts)})
    for a, b in zip(bounds, bounds[1:], strict=False):
        conn.execute("BEGIN IMMEDIATE")
        insert_items(conn, items[a:b], ids)
        conn.execute("COMMIT")
    return conn


def _expected_levels(conn: sqlite3.Connection) -> dict[tuple[int, int, int], tuple[Any, ...]]:
    """Every pyramid row by brute force from the scalar rows."""
    out: dict[tuple[int, int, int], list[Any]] = {}
    for i, tid, step, value, kind in conn.execute(
        "SELECT id, tag_id, step, value, kind FROM scalar"
    ):
        for level in range(1, LEVELS + 1):
            key = (tid, level, step >> shift(level))
            agg = out.setdefault(key, [0, None, None, None, None, None])
            agg[0] += 1
            if value is not None:
                agg[1] = value if agg[1] is None else min(agg[1], value)
                agg[2] = value if agg[2] is None else max(agg[2], value)
            elif 1 <= kind <= 3 and (agg[2 + kind] is None or i < agg[2 + kind]):
                agg[2 + kind] = i
    return {k: tuple(v) for k, v in out.items()}


def _stored_levels(conn: sqlite3.Connection) -> dict[tuple[int, int, int], tuple[Any, ...]]:
    got = {}
    rows = conn.execute(
        "SELECT tag_id, level, bucket, n, min_value, min_id, max_value, max_id, nan_id, "
        "pinf_id, ninf_id FROM scalar_level"
    ).fetchall()
    by_id = {r[0]: r for r in conn.execute("SELECT id, tag_id, step, value FROM scalar")}
    for tid, level, bucket, n, mn, mn_id, mx, mx_id, nan_id, pinf_id, ninf_id in rows:
        for value, rid in ((mn, mn_id), (mx, mx_id)):
            if value is None:
                assert rid is None
            else:  # the id names a row of that bucket holding that value
                r = by_id[rid]
                assert (r[1], r[2] >> shift(level), r[3]) == (tid, bucket, value)
        got[(tid, level, bucket)] = (n, mn, mx, nan_id, pinf_id, ninf_id)
    return got


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=series, cuts=st.lists(st.integers(0, 300), max_size=4))
def test_pyramid_matches_brute_force_after_batched_writes_and_after_a_rebuild(
    data: list[tuple[int, float]], cuts: list[int]
) -> None:
    conn = _write(data, cuts)
    want = _expected_levels(conn)
    assert _stored_levels(conn) == want
    build(conn)
    assert _stored_levels(conn) == want


def _reference(conn: sqlite3.Connection, tid: int, lo: int, hi: int) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT id, step, wall_time, value, kind FROM scalar WHERE tag_id = ? "
        "AND step BETWEEN ? AND ? ORDER BY step, id",
        (tid, lo, hi),
    ).fetchall()


def _check_read(rows: list[tuple[Any, ...]], ref: list[tuple[Any, ...]], max_points: int) -> None:
    stored = {r[0]: r for r in ref}
    assert len(rows) <= max_points
    assert all(stored.get(r[0]) == r for r in rows)  # every row returned is a stored row
    assert len({r[0] for r in rows}) == len(rows)
    assert rows == sorted(rows, key=lambda r: (r[1], r[0]))
    if not ref:
        assert rows == []
        return
    assert rows[-1][0] == ref[-1][0]  # the latest in range
    if max_points >= 2:
        assert rows[0][0] == ref[0][0]  # the first in range
    if len(ref) <= max_points:
        assert rows == ref
        return
    budget = max_points - 2
    cap = budget // 4 if budget >= 8 else budget // 2
    markers = [r for r in rows if 1 <= r[4] <= 3]
    nonfinite = [r[0] for r in ref if 1 <= r[4] <= 3]
    assert len(markers) <= max(cap, 0) + 2
    if cap > 0 and nonfinite:
        if len(nonfinite) <= cap:
            assert {r[0] for r in markers} >= set(nonfinite)
        else:
            assert markers
    finite = [r[3] for r in ref if r[3] is not None]
    if finite and max_points >= 10:  # the exact envelope: global min and max are in
        got = [r[3] for r in rows if r[3] is not None]
        assert min(finite) in got and max(finite) in got
        assert min(got) == min(finite) and max(got) == max(finite)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=series,
    cuts=st.lists(st.integers(0, 300), max_size=3),
    max_points=st.integers(1, 80),
    bounds=st.tuples(st.one_of(st.none(), steps), st.one_of(st.none(), steps)),
    pick=st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), st.booleans()),
)
def test_reads_keep_first_last_extremes_and_markers_on_random_zooms(
    data: list[tuple[int, float]],
    cuts: list[int],
    max_points: int,
    bounds: tuple[int | None, int | None],
    pick: tuple[int, int, bool],
) -> None:
    conn = _write(data, cuts, tags=1)
    lo, hi = bounds
    if pick[2]:  # zoom between two logged steps (a range that certainly holds points)
        ss = sorted(s for s, _ in data)
        lo, hi = sorted((ss[pick[0] % len(ss)], ss[pick[1] % len(ss)]))
    rows = scalar_rows(conn, 1, max_points=max_points, start_step=lo, end_step=hi)
    a = -I64 if lo is None else lo
    b = I64 - 1 if hi is None else hi
    _check_read(rows, _reference(conn, 1, a, b), max_points)
    legacy = scan_scalar_rows(conn, 1, max_points=max_points, start_step=lo, end_step=hi)
    _check_read(legacy, _reference(conn, 1, a, b), max_points)


def test_every_group_gets_its_exact_min_and_max() -> None:
    """A regular series: each returned min/max is the true extreme of some step stretch, and
    the answer uses (nearly) the whole budget."""
    data = [(i, math.sin(i * 0.37) * (1 + i % 11)) for i in range(20_000)]
    conn = _write(data, [7_000, 13_000], tags=1)
    for lo, hi, mp in ((None, None, 2000), (1234, 17_777, 500), (5, 2000, 101), (3, 300, 60)):
        rows = scalar_rows(conn, 1, max_points=mp, start_step=lo, end_step=hi)
        ref = _reference(conn, 1, lo or 0, 20_000 if hi is None else hi)
        _check_read(rows, ref, mp)
        assert len(rows) >= mp // 2  # buckets are whole pyramid buckets: at least half used
        values_in = [decode_value(r[3], r[4]) for r in rows]
        assert min(values_in) == min(r[3] for r in ref)


def _v1_store(path: Path, data: list[tuple[int, float]]) -> None:
    """A run.db exactly as deepscope wrote it before the pyramid (schema 1)."""
    path.mkdir(parents=True)
    conn = sqlite3.connect(path / DB_NAME, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO migration (version, applied, pid) VALUES (1, 0, 0)")
    conn.execute("INSERT INTO run (id, name, created, schema_version) VALUES (1, 'old', 0, 1)")
    conn.execute("INSERT INTO tag (id, name, kind) VALUES (1, 'loss', 'scalar')")
    conn.executemany(
        "INSERT INTO scalar (tag_id, step, wall_time, value, kind) VALUES (1, ?, ?, ?, ?)",
        [(s, float(s), *classify(v)) for s, v in data],
    )
    conn.execute(
        "UPDATE tag SET count = (SELECT COUNT(*) FROM scalar), first_step = (SELECT MIN(step)"
        " FROM scalar), last_step = (SELECT MAX(step) FROM scalar)"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.close()


def test_a_schema_1_store_is_read_by_scanning_and_migrated_by_a_writer(tmp_path: Path) -> None:
    data = [(i, math.cos(i / 50) + (5.0 if i == 1717 else 0.0)) for i in range(3000)]
    data[100] = (100, math.nan)
    data[2500] = (2500, -7.5)
    _v1_store(tmp_path / "old", data)
    db = tmp_path / "old" / DB_NAME
    reader = deepscope.store.open(tmp_path).run("old")
    before = reader.scalars("loss", max_points=200)
    values_before = [p.value for p in before]
    assert 5.0 + math.cos(1717 / 50) in values_before and -7.5 in values_before
    assert any(math.isnan(v) for v in values_before)
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA user_version").fetchone()[0] == 1  # readers never migrate
    check.close()

    conn = connect_writer(db)  # what RunWriter does on open
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert [r[0] for r in conn.execute("SELECT version FROM migration ORDER BY rowid")] == [1, 3]
    assert _stored_levels(conn) == _expected_levels(conn)
    conn.close()
    after = reader.scalars("loss", max_points=200)
    assert len(after) <= 200
    assert [after[0].step, after[-1].step] == [0, 2999]
    values_after = [p.value for p in after]
    assert 5.0 + math.cos(1717 / 50) in values_after and -7.5 in values_after
    assert any(math.isnan(v) for v in values_after)

    writer = RunWriter(tmp_path / "old", "old")  # and keeps folding new points in
    writer.put(("s", 5000, 0.0, (("loss", -99.0),)))
    writer.close()
    conn = sqlite3.connect(db)
    assert _stored_levels(conn) == _expected_levels(conn)
    conn.close()
    assert min(p.value for p in reader.scalars("loss", max_points=50)) == -99.0


def _plans(conn: sqlite3.Connection, statements: list[str]) -> list[str]:
    out = []
    for sql in statements:
        if sql.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE")):
            out += [f"{r[3]}  <- {sql[:60]}" for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    return out


def test_reads_and_folds_use_indexes_never_a_whole_table_or_index_scan() -> None:
    data = [(i, math.nan if i % 97 == 0 else math.sin(i)) for i in range(5000)]
    conn = _write(data, [2500])
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    for lo, hi, mp in ((None, None, 200), (77, 4321, 100), (1000, 1003, 3)):
        scalar_rows(conn, 1, max_points=mp, start_step=lo, end_step=hi)
    conn.execute("BEGIN IMMEDIATE")
    insert_items(conn, [("s", 6000, 0.0, (("x", math.inf),))], {("x", "scalar"): 1})
    conn.execute("COMMIT")
    conn.set_trace_callback(None)
    plans = _plans(conn, statements)
    assert any("scalar_level USING PRIMARY KEY" in p for p in plans), plans
    assert any("scalar_nonfinite" in p for p in plans), plans
    full = [p for p in plans if re.match(r"SCAN (scalar|scalar_level|tag)\b", p)]
    assert not full, full  # every read of scalar / scalar_level is a SEARCH on an index
    statements.clear()  # the SQL path of the fold (a rebuild) reads new rows by rowid
    conn.set_trace_callback(statements.append)
    conn.execute("BEGIN IMMEDIATE")
    build(conn)
    conn.execute("COMMIT")
    conn.set_trace_callback(None)
    reads = _plans(conn, [sql for sql in statements if "NOT INDEXED" in sql])
    reads = [p for p in reads if re.match(r"(SCAN|SEARCH) scalar\b", p)]
    assert len(reads) >= 3, statements
    assert all("USING INTEGER PRIMARY KEY (rowid>?)" in p for p in reads), reads
