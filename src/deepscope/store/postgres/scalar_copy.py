"""The scalar rows of a batch in numpy: one binary COPY buffer, the pyramid, per-tag stats.

`deepscope.store.postgres.batch` uses this when numpy is importable (the pure-Python
path there is the fallback of a ``[postgres]``-only install). Nothing here runs per row in
Python: the rows are flattened once, then

- sorted by (tag, level-1 bucket, id): COPY appends each tag's rows together, in index
  order, so the primary key's B-tree inserts land on the same few pages and each tag's rows
  share heap pages (reads of one tag touch fewer pages);
- encoded into PostgreSQL's binary COPY format with structured dtypes (finite rows and rows
  whose ``value`` is NULL are two fixed-width blocks of the same buffer);
- folded into the min/max pyramid of `deepscope.store.postgres.levels`, every level a
  handful of ``ufunc.reduceat`` calls over the level below (ties of an extreme go to the
  smallest id, as the per-row fold does, since ids follow logging order);
- merged into ``scalar_level`` through a temporary table filled by binary COPY too (absent
  extremes are id 0, which no row has, and become NULL in the merge).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import numpy as np

from deepscope.store.levels import BITS, LEVELS, S1
from deepscope.store.postgres.levels import merge_sql
from deepscope.store.schema import KIND_NAN, KIND_NEGINF, KIND_NEGZERO, KIND_POSINF

__all__ = ["Scalars", "encode_rows", "flatten", "pyramid", "tag_stats", "upsert_pyramid"]

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
_I64_MAX = np.iinfo(np.int64).max
Cols = dict[str, np.ndarray]
_first, _second = itemgetter(0), itemgetter(1)


def _row_dtype(fields: list[tuple[str, str | None]]) -> np.dtype[Any]:
    """One binary COPY row: the field count, then each field's length and big-endian data
    (a field of type None is NULL: its length -1 and no data)."""
    spec: list[tuple[str, str]] = [("nf", ">i2")]
    for name, code in fields:
        spec.append((f"{name}_len", ">i4"))
        if code is not None:
            spec.append((name, code))
    return np.dtype(spec)


def _fill(dtype: np.dtype[Any], nfields: int, cols: Cols) -> bytes:
    n = len(next(iter(cols.values())))
    out = np.empty(n, dtype)
    out["nf"] = nfields
    names = dtype.names or ()
    for name in names:
        if name.endswith("_len"):
            field = name[:-4]
            out[name] = dtype[field].itemsize if field in names else -1
        elif name != "nf":
            out[name] = cols[name]
    return out.tobytes()


_SCALAR_FIELDS = [("tag_id", ">i8"), ("step", ">i8"), ("id", ">i8"), ("wall", ">f8")]
_FULL_ROW = _row_dtype([*_SCALAR_FIELDS, ("value", ">f8"), ("kind", ">i2")])
_NULL_ROW = _row_dtype([*_SCALAR_FIELDS, ("value", None), ("kind", ">i2")])
COPY_SCALARS = (
    "COPY deepscope.scalar (tag_id, step, id, wall_time, value, kind) FROM STDIN (FORMAT BINARY)"
)


class Scalars:
    """The scalar rows of one batch, in logging order (ids come later: `assign_ids`)."""

    def __init__(self, names: list[str], tag: np.ndarray, step: np.ndarray,
                 wall: np.ndarray, value: np.ndarray) -> None:  # fmt: skip
        self.names = names
        self.tag, self.step, self.wall, self.value = tag, step, wall, value

    def __len__(self) -> int:
        return len(self.value)


def flatten(recs: list[Any]) -> Scalars:
    """Columns of the scalar records ``("s", step, wall_time, ((tag, value), ...))``.
    Tag ids are filled in by `resolve`. Raises ValueError/TypeError/OverflowError
    for values or steps the store cannot hold (the writer keeps the valid records)."""
    counts = np.fromiter((len(r[3]) for r in recs), np.intp, len(recs))
    flat = [p for r in recs for p in r[3]]
    if not flat:
        empty_i, empty_f = np.empty(0, np.int64), np.empty(0, np.float64)
        return Scalars([], empty_i, empty_i, empty_f, empty_f)
    names = list(map(_first, flat))
    value = np.fromiter(map(_second, flat), np.float64, len(flat))
    step = np.repeat(np.fromiter((r[1] for r in recs), np.int64, len(recs)), counts)
    wall = np.repeat(np.fromiter((r[2] for r in recs), np.float64, len(recs)), counts)
    return Scalars(names, np.empty(0, np.int64), step, wall, value)


def resolve(s: Scalars, tag_of: dict[str, int]) -> None:
    """Fill the tag ids of `s` from ``tag name -> id``."""
    s.tag = np.fromiter(map(tag_of.__getitem__, s.names), np.int64, len(s.names))


def kinds(value: np.ndarray) -> np.ndarray:
    """The ``kind`` column (`deepscope.store.schema` KIND_*) of float64 values."""
    kind = np.zeros(len(value), np.int16)
    kind[np.isnan(value)] = KIND_NAN
    kind[value == np.inf] = KIND_POSINF
    kind[value == -np.inf] = KIND_NEGINF
    kind[(value == 0.0) & np.signbit(value)] = KIND_NEGZERO
    return kind


def sort_rows(s: Scalars, blocks: list[int], block_bits: int) -> Cols:
    """Sorted columns (tag, bucket1, step, id, wall, value, kind); row i of the batch gets
    the id ``blocks[i >> block_bits] + (i & (2**block_bits - 1))`` (logging order)."""
    n = len(s)
    i = np.arange(n, dtype=np.int64)
    ids = np.asarray(blocks, np.int64)[i >> block_bits] + (i & ((1 << block_bits) - 1))
    b1 = s.step >> S1
    order = np.lexsort((b1, s.tag))  # stable: logging (id) order within a bucket
    return {"tag": s.tag[order], "b1": b1[order], "step": s.step[order], "id": ids[order],
            "wall": s.wall[order], "value": s.value[order], "kind": kinds(s.value[order])}  # fmt: skip


def encode_rows(rows: Cols) -> bytes:
    """The binary COPY buffer of the sorted rows (`COPY_SCALARS`)."""
    kind = rows["kind"]
    null = (kind == KIND_NAN) | (kind == KIND_POSINF) | (kind == KIND_NEGINF)
    full = ~null
    value = np.where(kind == KIND_NEGZERO, 0.0, rows["value"])  # -0.0 is kind 4, value 0.0

    def cols(mask: np.ndarray) -> Cols:
        return {"tag_id": rows["tag"][mask], "step": rows["step"][mask],
                "id": rows["id"][mask], "wall": rows["wall"][mask],
                "value": value[mask], "kind": kind[mask]}  # fmt: skip

    parts = [HEADER]
    if full.any():
        parts.append(_fill(_FULL_ROW, 6, cols(full)))
    if null.any():
        parts.append(_fill(_NULL_ROW, 6, cols(null)))
    parts.append(TRAILER)
    return b"".join(parts)


# ---- the pyramid ----------------------------------------------------------------------
_EXTREMES = ("min", "max")
_MARKERS = ("nan", "pinf", "ninf")
_AGG_COLS = ("n", *(f"{e}_{c}" for e in _EXTREMES for c in ("value", "id", "step", "wall")),
             *(f"{m}_{c}" for m in _MARKERS for c in ("id", "step", "wall")))  # fmt: skip


def _starts(*keys: np.ndarray) -> np.ndarray:
    change = np.zeros(len(keys[0]) - 1, bool)
    for k in keys:
        change |= k[1:] != k[:-1]
    return np.concatenate(([0], np.flatnonzero(change) + 1))


def _leaf(rows: Cols) -> Cols:
    """Every row as the aggregate of its own bucket (id 0: absent)."""
    kind, ids = rows["kind"], rows["id"]
    finite = (kind == 0) | (kind == KIND_NEGZERO)
    zero_i = np.zeros(len(ids), np.int64)
    a: Cols = {"n": np.ones(len(ids), np.int64)}
    for e in _EXTREMES:
        a[f"{e}_value"] = np.where(finite, rows["value"], 0.0)  # -0.0 kept as such
        a[f"{e}_id"] = np.where(finite, ids, 0)
        a[f"{e}_step"], a[f"{e}_wall"] = rows["step"], rows["wall"]
    for m, k in zip(_MARKERS, (KIND_NAN, KIND_POSINF, KIND_NEGINF), strict=True):
        hit = kind == k
        a[f"{m}_id"] = np.where(hit, ids, 0) if hit.any() else zero_i
        a[f"{m}_step"], a[f"{m}_wall"] = rows["step"], rows["wall"]
    return a


def _pick(out: Cols, a: Cols, prefix: str, cols: tuple[str, ...], hit: np.ndarray,
          starts: np.ndarray, sizes: np.ndarray) -> None:  # fmt: skip
    """Per group, the columns of the hit row with the smallest ``{prefix}_id`` (0 if none)."""
    ids = a[f"{prefix}_id"]
    groups = len(starts)
    if not hit.any():
        for c in cols:
            out[f"{prefix}_{c}"] = np.zeros(groups, a[f"{prefix}_{c}"].dtype)
        return
    cand = np.where(hit, ids, _I64_MAX)
    best = np.minimum.reduceat(cand, starts)
    has = best != _I64_MAX
    idx = np.flatnonzero(hit & (cand == np.repeat(best, sizes)))  # ids are unique: 1/group
    for c in cols:
        col = np.zeros(groups, a[f"{prefix}_{c}"].dtype)
        col[has] = a[f"{prefix}_{c}"][idx]
        out[f"{prefix}_{c}"] = col


def _reduce(a: Cols, starts: np.ndarray) -> Cols:
    """Aggregates of the groups that begin at `starts` (contiguous runs of `a`)."""
    sizes = np.diff(np.append(starts, len(a["n"])))
    out: Cols = {"n": np.add.reduceat(a["n"], starts)}
    for e, ufunc, fill in (("min", np.minimum, np.inf), ("max", np.maximum, -np.inf)):
        present = a[f"{e}_id"] != 0
        hit = present
        if present.any():
            cand = np.where(present, a[f"{e}_value"], fill)
            hit = present & (cand == np.repeat(ufunc.reduceat(cand, starts), sizes))
        _pick(out, a, e, ("value", "id", "step", "wall"), hit, starts, sizes)
    for m in _MARKERS:
        _pick(out, a, m, ("id", "step", "wall"), a[f"{m}_id"] != 0, starts, sizes)
    return out


def pyramid(rows: Cols) -> Cols:
    """Pyramid rows of every level (columns tag_id, level, bucket and `_AGG_COLS`)."""
    tag, bucket = rows["tag"], rows["b1"]
    starts = _starts(tag, bucket)
    agg = _reduce(_leaf(rows), starts)
    tag, bucket = tag[starts], bucket[starts]
    levels: list[Cols] = []
    for level in range(1, LEVELS + 1):
        levels.append({"tag_id": tag, "level": np.full(len(tag), level, np.int16),
                       "bucket": bucket, **agg})  # fmt: skip
        if level == LEVELS:
            break
        bucket = bucket >> BITS
        starts = _starts(tag, bucket)
        agg = _reduce(agg, starts)
        tag, bucket = tag[starts], bucket[starts]
    return {k: np.concatenate([lv[k] for lv in levels]) for k in levels[0]}


_STAGE_FIELDS: list[tuple[str, str | None]] = [
    ("tag_id", ">i8"), ("level", ">i2"), ("bucket", ">i8"), ("n", ">i8"),
    *((c, ">f8" if c.endswith(("_value", "_wall")) else ">i8") for c in _AGG_COLS[1:]),
]  # fmt: skip
_STAGE_ROW = _row_dtype(_STAGE_FIELDS)
_STAGE_COLS = ", ".join(name for name, _ in _STAGE_FIELDS)
_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS level_stage_np ("
    + ", ".join(
        f"{name} {'smallint' if code == '>i2' else 'double precision' if code == '>f8' else 'bigint'}"
        " NOT NULL"
        for name, code in _STAGE_FIELDS
    )
    + ") ON COMMIT DELETE ROWS"
)
_COPY_STAGE = f"COPY level_stage_np ({_STAGE_COLS}) FROM STDIN (FORMAT BINARY)"


def _nullable(col: str) -> str:
    """The stage column as the pyramid's: NULL where its extreme or marker is absent."""
    prefix = col.rsplit("_", 1)[0]
    return f"CASE WHEN {prefix}_id <> 0 THEN {col} END"


_SELECT = ", ".join(
    c if c in ("tag_id", "level", "bucket", "n") else _nullable(c)
    for c in ("tag_id", "level", "bucket", *_AGG_COLS)
)


def upsert_pyramid(conn: Any, rows: Cols) -> None:
    """Merge pyramid rows into ``scalar_level`` (inside the caller's transaction)."""
    conn.execute(_STAGE)
    with conn.cursor().copy(_COPY_STAGE) as copy:
        copy.write(HEADER + _fill(_STAGE_ROW, len(_STAGE_FIELDS), rows) + TRAILER)
    conn.execute(
        merge_sql(
            ", ".join(("tag_id", "level", "bucket", *_AGG_COLS)),
            f"SELECT {_SELECT} FROM level_stage_np ORDER BY tag_id, level, bucket",
        )
    )


def tag_stats(rows: Cols) -> dict[int, list[int]]:
    """``tag id -> [count, first step, last step]`` of the sorted rows."""
    tag, step = rows["tag"], rows["step"]
    starts = _starts(tag)
    sizes = np.diff(np.append(starts, len(tag)))
    lo, hi = np.minimum.reduceat(step, starts), np.maximum.reduceat(step, starts)
    return {
        int(t): [int(n), int(a), int(b)]
        for t, n, a, b in zip(tag[starts], sizes, lo, hi, strict=True)
    }
