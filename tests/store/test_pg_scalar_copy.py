"""The PostgreSQL writer's scalar encoders (numpy, and the per-row one of an install without
numpy) store exactly what was logged, and the min/max pyramid they fold agrees with the raw
rows: NaN, ±Inf, -0.0, subnormals, extreme and out-of-order steps, duplicate steps, tied
extremes, unicode and SQL-looking tags, across several batches (the pyramid merge)."""

from __future__ import annotations

import math
import random
import struct
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import deepscope
import deepscope.store
from deepscope.store.levels import LEVELS, shift
from deepscope.store.postgres import batch

TAGS = ["loss", "λ/ложь 🚀", "x'); DROP TABLE deepscope.scalar; --", "tied"]
SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, -5e-324, 1.7976931348623157e308,
           -1.7976931348623157e308, 2.0**-1022, 1.0]  # fmt: skip
STEPS = [-(2**63), 2**63 - 1, -1, 0, 31, 32, 33, 2**40, -(2**40) - 7]


@pytest.fixture(params=["numpy", "per-row"])
def encoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "per-row":
        monkeypatch.setattr(batch, "USE_NUMPY", False)
    else:
        assert batch.USE_NUMPY  # numpy is installed here: the fast path is the one tested
        monkeypatch.setattr(batch, "NUMPY_MIN_POINTS", 0)  # every batch, however small
    yield str(request.param)


def _logged(seed: int) -> list[tuple[int, dict[str, float]]]:
    """(step, values) of several hundred log calls: specials, ties, odd steps."""
    rng = random.Random(seed)
    calls = []
    for i in range(600):
        step = rng.choice(STEPS) if i % 7 == 0 else rng.randrange(-50, 400)
        values = {}
        for t in TAGS:
            if t == "tied":
                values[t] = rng.choice([0.0, -0.0, 1.0, -1.0])  # extremes tie in every bucket
            elif rng.random() < 0.3:
                values[t] = rng.choice(SPECIAL)
            else:
                values[t] = rng.uniform(-1e6, 1e6)
        calls.append((step, values))
    return calls


def _bits(v: float) -> bytes:
    return b"nan" if math.isnan(v) else struct.pack(">d", v)


def _value(value: float | None, kind: int) -> float:
    return {1: math.nan, 2: math.inf, 3: -math.inf, 4: -0.0}.get(kind, value)  # type: ignore[return-value]


def test_scalars_round_trip_exactly(pg_fresh_url: str, encoder: str) -> None:
    run = deepscope.init(store=pg_fresh_url, name=f"exact-{encoder}", flush_interval=60.0)
    expected: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
    for part in range(3):  # three batches
        for step, values in _logged(part):
            run.log(values, step=step)
            for t, v in values.items():
                expected[t].append((step, _bits(v)))
        run.flush()
    run.finish()
    assert run.dropped == 0
    reader = deepscope.store.open(pg_fresh_url).run(f"exact-{encoder}")
    stats = {i.tag: (i.count, i.first_step, i.last_step) for i in reader.tags()}
    assert stats == {
        t: (len(p), min(s for s, _ in p), max(s for s, _ in p)) for t, p in expected.items()
    }
    for t in TAGS:
        got = reader.scalars(t, max_points=10**6)
        want = sorted(expected[t], key=lambda p: p[0])  # stable: logging order within a step
        assert [(p.step, _bits(p.value)) for p in got] == want, t


def _rows(url: str, name: str) -> tuple[dict[int, list[tuple[Any, ...]]], list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        raw = conn.execute(
            "SELECT s.tag_id, s.id, s.step, s.wall_time, s.value, s.kind FROM deepscope.scalar s"
            " JOIN deepscope.tag t ON t.id = s.tag_id JOIN deepscope.run r ON r.id = t.run_id"
            " WHERE r.name = %s",
            (name,),
        ).fetchall()
        levels = conn.execute(
            "SELECT l.* FROM deepscope.scalar_level l JOIN deepscope.tag t ON t.id = l.tag_id"
            " JOIN deepscope.run r ON r.id = t.run_id WHERE r.name = %s",
            (name,),
        ).fetchall()
        cols = [d.name for d in conn.execute("SELECT * FROM deepscope.scalar_level LIMIT 0")
                .description or []]  # fmt: skip
    by_tag: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for r in raw:
        by_tag[r[0]].append(r[1:])
    return by_tag, [tuple(zip(cols, lv, strict=True)) for lv in levels]


def test_pyramid_agrees_with_the_raw_rows(pg_fresh_url: str, encoder: str) -> None:
    name = f"pyramid-{encoder}"
    run = deepscope.init(store=pg_fresh_url, name=name, flush_interval=60.0)
    for part in range(3):
        for step, values in _logged(10 + part):
            run.log(values, step=step)
        run.flush()
    run.finish()
    raw, levels = _rows(pg_fresh_url, name)
    ids = [r[0] for rows in raw.values() for r in rows]
    assert len(ids) == len(set(ids)) == 3 * 600 * len(TAGS)
    for rows in raw.values():  # the columns' contract: value NULL exactly for NaN and ±Inf
        for _, _, _, value, kind in rows:
            if kind in (1, 2, 3):
                assert value is None
            elif kind == 4:
                assert _bits(value) == _bits(0.0)
            else:
                assert kind == 0 and math.isfinite(value) and _bits(value) != _bits(-0.0)
    expected: dict[tuple[int, int, int], list[tuple[Any, ...]]] = defaultdict(list)
    for tid, rows in raw.items():
        for r in rows:
            for level in range(1, LEVELS + 1):
                expected[(tid, level, r[1] >> shift(level))].append(r)
    seen = set()
    for lv in levels:
        d = dict(lv)
        key = (d["tag_id"], d["level"], d["bucket"])
        seen.add(key)
        rows = expected[key]
        by_id = {r[0]: r for r in rows}
        assert d["n"] == len(rows), key
        finite = [_value(r[3], r[4]) for r in rows if r[4] in (0, 4)]
        for ext, fn in (("min", min), ("max", max)):
            if not finite:
                assert d[f"{ext}_id"] is None and d[f"{ext}_value"] is None, key
                continue
            assert d[f"{ext}_value"] == fn(finite), key
            row = by_id[d[f"{ext}_id"]]  # the referenced row holds the extreme, bit for bit
            assert _bits(_value(row[3], row[4])) == _bits(d[f"{ext}_value"]), key
            assert (d[f"{ext}_step"], d[f"{ext}_wall"]) == (row[1], row[2]), key
        for kind, marker in ((1, "nan"), (2, "pinf"), (3, "ninf")):
            hits = [r for r in rows if r[4] == kind]
            if not hits:
                assert d[f"{marker}_id"] is None, key
                continue
            first = min(hits)  # the smallest id of that kind in the bucket
            assert (d[f"{marker}_id"], d[f"{marker}_step"], d[f"{marker}_wall"]) == first[:3]
    assert seen == set(expected)  # no bucket missing, none extra
