"""One batch of write records committed to PostgreSQL in one transaction.

`write_batch` runs inside the caller's transaction: it first claims the batch id and, in the
same statement, a block of scalar ids (``nextval`` of ``scalar_block``; a batch already
committed is skipped: replays never duplicate), then COPYs the scalar rows, folds them into
the pyramid, updates per-tag counts and step ranges, inserts histograms, blobs (bytes
included), events, and advances the run's version that live readers poll.

Scalars go through numpy (`deepscope.store.postgres.scalar_copy`: no Python per row) when
it is importable; a ``[postgres]``-only install without numpy uses the per-row encoder here.
Both write the same rows and pyramid.
"""

from __future__ import annotations

import importlib.util
import math
import struct
import sys
import time
from typing import Any

from deepscope.store.levels import S1
from deepscope.store.postgres.levels import Agg, new_agg, roll_up, upsert_levels
from deepscope.store.postgres.schema import ID_BLOCK_BITS
from deepscope.store.protocol import WriteRecord
from deepscope.store.rows import classify, histogram_row
from deepscope.store.schema import KIND_FINITE

__all__ = ["RunDeleted", "count_points", "write_batch"]


class RunDeleted(Exception):
    """The run's row is gone: it was deleted (`deepscope rm --force`) while being written."""


_BLOCK = 1 << ID_BLOCK_BITS
USE_NUMPY = importlib.util.find_spec("numpy") is not None  # tests switch it off
# numpy is imported for the first batch this large (importing it costs about as much CPU as
# encoding this many rows in Python) or once something else has imported it
NUMPY_MIN_POINTS = 20_000
_LOCK_RUN = "SELECT 1 FROM deepscope.run WHERE id = %s FOR KEY SHARE"
_CLAIM = (
    "INSERT INTO deepscope.batch (id, run_id, session_id, committed) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (id) DO NOTHING"
)
# the claim and the first block of scalar ids in one round trip (an unused block is harmless)
_CLAIM_BLOCK = (
    f"WITH c AS ({_CLAIM} RETURNING 1) SELECT count(*), nextval('deepscope.scalar_block') FROM c"
)


def count_points(records: list[WriteRecord]) -> int:
    """Points held by `records` (a scalar record holds one per tag)."""
    recs: list[Any] = records  # dispatched on the code in field 0
    return sum(len(r[3]) if r[0] in "sd" else 1 for r in recs)


def _tag_ids(
    conn: Any, run_id: int, cache: dict[tuple[str, str], int], keys: set[tuple[str, str]]
) -> None:
    missing = sorted(keys - cache.keys())
    if not missing:
        return
    names = [k[0] for k in missing]
    kinds = [k[1] for k in missing]
    conn.execute(
        "INSERT INTO deepscope.tag (run_id, name, kind)"
        " SELECT %s, n, k FROM unnest(%s::text[], %s::text[]) AS u(n, k)"
        " ON CONFLICT (run_id, name, kind) DO NOTHING",
        (run_id, names, kinds),
    )
    rows = conn.execute(
        "SELECT t.name, t.kind, t.id FROM deepscope.tag t"
        " JOIN unnest(%s::text[], %s::text[]) AS u(n, k) ON t.name = u.n AND t.kind = u.k"
        " WHERE t.run_id = %s",
        (names, kinds, run_id),
    ).fetchall()
    for name, kind, tid in rows:
        cache[(name, kind)] = int(tid)


def write_batch(
    conn: Any,
    run_id: int,
    session_id: int | None,
    batch_id: str,
    records: list[WriteRecord],
    tags: dict[tuple[str, str], int],
) -> bool:
    """Write `records` (inside the caller's transaction). False: the batch was committed
    before (nothing written)."""
    # the run row, locked against a deletion (FOR KEY SHARE: writers of one run do not
    # block each other or their `version` update; `delete_postgres_run`'s FOR UPDATE
    # waits for this batch, and a batch after the deletion finds no row): no rows are
    # ever written under the id of a deleted run
    if conn.execute(_LOCK_RUN, (run_id,)).fetchone() is None:
        raise RunDeleted(f"run id {run_id} is no longer in the database")
    now = time.time()
    recs: list[Any] = records  # dispatched on the code in field 0
    srecs = [r for r in recs if r[0] == "s"]
    fast = _numpy_path(srecs)
    flat = fast.flatten(srecs) if fast is not None else None
    args = (batch_id, run_id, session_id, now)
    block = 0
    if srecs:
        claimed, block = conn.execute(_CLAIM_BLOCK, args).fetchone()
    else:
        claimed = conn.execute(_CLAIM, args).rowcount
    if claimed == 0:
        return False
    keys: set[tuple[str, str]] = set()
    names = set(flat.names) if flat is not None else {t for r in srecs for t, _ in r[3]}
    keys.update((t, "scalar") for t in names)
    for r in recs:
        code = r[0]
        if code == "s":
            continue
        elif code == "h":
            keys.add((r[1], "histogram"))
        elif code == "b":
            keys.add((r[2], r[1]))
    _tag_ids(conn, run_id, tags, keys)
    if fast is not None and flat is not None:
        _fast_scalars(conn, fast, flat, {t: tags[(t, "scalar")] for t in names}, int(block))
    elif srecs:
        _scalars(conn, srecs, tags, int(block))
    hists = [
        (tags[(r[1], "histogram")], r[2], r[3], *histogram_row(r[4])) for r in recs if r[0] == "h"
    ]
    if hists:
        conn.cursor().executemany(
            "INSERT INTO deepscope.histogram (tag_id, step, wall_time, edges, counts, count,"
            " n_nan, n_posinf, n_neginf, min, max, sum, sum_sq)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            hists,
        )
        _stats(conn, [(h[0], h[1]) for h in hists])
    blobs = [r for r in recs if r[0] == "b"]
    if blobs:
        cur = conn.cursor()
        cur.executemany(
            "INSERT INTO deepscope.blob_data (run_id, path, data) VALUES (%s, %s, %s)"
            " ON CONFLICT (run_id, path) DO NOTHING",
            list({r[5]: (run_id, r[5], r[6]) for r in blobs}.values()),
        )
        cur.executemany(
            "INSERT INTO deepscope.blob (run_id, tag_id, kind, step, wall_time, path, meta)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(run_id, tags[(r[2], r[1])], r[1], r[3], r[4], r[5], r[7]) for r in blobs],
        )
        _stats(conn, [(tags[(r[2], r[1])], r[3]) for r in blobs])
    events = [(run_id, *r[1:]) for r in recs if r[0] == "e"]
    if events:
        conn.cursor().executemany(
            "INSERT INTO deepscope.event (run_id, step, wall_time, severity, kind, layer, message)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            events,
        )
    conn.execute("UPDATE deepscope.run SET version = version + 1 WHERE id = %s", (run_id,))
    if session_id is not None:
        conn.execute("UPDATE deepscope.session SET heartbeat = %s WHERE id = %s", (now, session_id))
    return True


_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_TRAILER = struct.pack(">h", -1)
# one scalar row in COPY BINARY: 6 fields (tag_id, step, id, wall_time, value, kind)
_ROW = struct.Struct(">hiqiqiqidid" + "ih").pack
_ROW_NULL = struct.Struct(">hiqiqiqidi" + "ih").pack  # value NULL (length -1)
_COPY_SCALARS = (
    "COPY deepscope.scalar (tag_id, step, id, wall_time, value, kind) FROM STDIN (FORMAT BINARY)"
)


def _id_blocks(conn: Any, first: int, total: int) -> list[int]:
    """`first` and as many more blocks of 2**24 scalar ids as `total` rows need."""
    more = (total - 1) // _BLOCK
    return [first] + [_next_block(conn) for _ in range(more)]


def _next_block(conn: Any) -> int:
    return int(conn.execute("SELECT nextval('deepscope.scalar_block')").fetchone()[0])


def _numpy_path(srecs: list[Any]) -> Any:
    """The numpy encoder (`deepscope.store.postgres.scalar_copy`) for these scalar records,
    or None: the per-row one (no numpy, or a small batch while numpy is not imported)."""
    if not USE_NUMPY or not srecs:
        return None
    if "numpy" not in sys.modules and sum(len(r[3]) for r in srecs) < NUMPY_MIN_POINTS:
        return None
    from deepscope.store.postgres import scalar_copy

    return scalar_copy


def _fast_scalars(conn: Any, _fast: Any, flat: Any, tag_of: dict[str, int], block: int) -> None:
    """COPY the scalar rows, merge their pyramid and per-tag stats (numpy throughout)."""
    if not len(flat):
        return
    _fast.resolve(flat, tag_of)
    rows = _fast.sort_rows(flat, _id_blocks(conn, block, len(flat)), ID_BLOCK_BITS)
    with conn.cursor().copy(_fast.COPY_SCALARS) as copy:
        copy.write(_fast.encode_rows(rows))
    _fast.upsert_pyramid(conn, _fast.pyramid(rows))
    _update_stats(conn, _fast.tag_stats(rows))


def _scalars(conn: Any, recs: list[Any], tags: dict[tuple[str, str], int], block: int) -> None:
    """COPY the scalar rows (one pass in Python: binary rows, pyramid level 1, per-tag
    stats): the encoder of an install without numpy."""
    total = sum(len(r[3]) for r in recs)
    if not total:
        return
    inf = math.inf
    rows: list[bytes] = []
    put = rows.append
    level1: dict[tuple[int, int], Agg] = {}
    get = level1.get
    stats: dict[int, list[int]] = {}
    i = base = 0
    left = 0
    for r in recs:
        _, step, wall, pairs = r
        for tag, v in pairs:
            if left == 0:  # a fresh block of 2**24 ids
                base = block if block else _next_block(conn)
                block = 0
                i, left = base, _BLOCK
            left -= 1
            tid = tags[(tag, "scalar")]
            key = (tid, step >> S1)
            agg = get(key)
            if agg is None:
                agg = level1[key] = new_agg()
            agg[0] += 1
            if -inf < v < inf and v != 0.0:
                put(_ROW(6, 8, tid, 8, step, 8, i, 8, wall, 8, v, 2, KIND_FINITE))
            else:
                value, kind = classify(v)
                if value is None:
                    put(_ROW_NULL(6, 8, tid, 8, step, 8, i, 8, wall, -1, 2, kind))
                    slot = 5 + 2 * kind  # 7, 9, 11: nan, +inf, -inf
                    if agg[slot] is None:
                        agg[slot], agg[slot + 1], agg[14 + kind] = i, step, wall
                    i += 1
                    _count(stats, tid, step)
                    continue
                put(_ROW(6, 8, tid, 8, step, 8, i, 8, wall, 8, value, 2, kind))
            if agg[1] is None:  # v itself (-0.0 kept): the pyramid rebuilds the point
                agg[1:7] = (v, i, step, v, i, step)
                agg[13] = agg[14] = wall
            elif v < agg[1]:
                agg[1], agg[2], agg[3], agg[13] = v, i, step, wall
            elif v > agg[4]:
                agg[4], agg[5], agg[6], agg[14] = v, i, step, wall
            _count(stats, tid, step)
            i += 1
    with conn.cursor().copy(_COPY_SCALARS) as copy:
        copy.write(_HEADER + b"".join(rows) + _TRAILER)
    upsert_levels(conn, roll_up(level1))
    _update_stats(conn, stats)


def _count(stats: dict[int, list[int]], tid: int, step: int) -> None:
    st = stats.get(tid)
    if st is None:
        stats[tid] = [1, step, step]
    else:
        st[0] += 1
        if step < st[1]:
            st[1] = step
        elif step > st[2]:
            st[2] = step


def _stats(conn: Any, pairs: list[tuple[int, int]]) -> None:
    """Per-tag count and step range from (tag_id, step) pairs of this batch."""
    agg: dict[int, list[int]] = {}
    for tid, step in pairs:
        a = agg.get(tid)
        if a is None:
            agg[tid] = [1, step, step]
        else:
            a[0] += 1
            if step < a[1]:
                a[1] = step
            elif step > a[2]:
                a[2] = step
    _update_stats(conn, agg)


def _update_stats(conn: Any, agg: dict[int, list[int]]) -> None:
    conn.cursor().executemany(
        "UPDATE deepscope.tag SET count = count + %s,"
        " first_step = LEAST(coalesce(first_step, %s), %s),"
        " last_step = GREATEST(coalesce(last_step, %s), %s) WHERE id = %s",
        [(n, lo, lo, hi, hi, tid) for tid, (n, lo, hi) in sorted(agg.items())],
    )
