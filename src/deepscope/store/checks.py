"""Checks that keep a hostile or corrupt ``run.db`` from hurting its readers (docs/threats.md S10).

* `verify_schema`: the database holds exactly the tables and indexes deepscope writes (their
  SQL compared with what the writer creates, for every schema version), and no view, trigger
  or virtual table: those run arbitrary SQL (an endless recursive query) inside an innocent
  ``SELECT`` or ``INSERT``. Extra plain tables are allowed (never read, never written).
* `set_deadline`: a progress handler that interrupts any statement of the connection once a
  monotonic deadline has passed (SQLite raises ``OperationalError: interrupted``).
* `as_int` and friends: strict conversions of column values, so a wrongly typed cell
  (``heartbeat = 'abc'``) raises `BadValue` with a reason instead of a raw ``TypeError``
  somewhere later.

Imports the standard library only.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

# SQLite calls the progress handler every PROGRESS_OPS virtual-machine instructions: about
# every 0.1-0.5 ms of query work, so a deadline is met to within a millisecond while the
# Python callback costs well under 1 % of a read.
PROGRESS_OPS = 10_000


class SchemaProblem(Exception):
    """The database is not a run store deepscope wrote; `str()` says why."""


class NotInitialised(SchemaProblem):
    """An empty database (a writer is creating it right now)."""


class BadValue(ValueError):
    """A column holds a value of the wrong type."""


# ---- schema ---------------------------------------------------------------------------------
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.S)
_SPACE = re.compile(r"\s+")
_PUNCT = re.compile(r"\s*([(),])\s*")


def normalise_sql(sql: str) -> str:
    """`sql` without comments, case or layout (so equal schemas compare equal)."""
    text = _SPACE.sub(" ", _COMMENT.sub(" ", sql))
    return _PUNCT.sub(r"\1", text).strip().lower()


Objects = dict[tuple[str, str], str]  # (type, name) -> normalised sql


@lru_cache(maxsize=1)
def expected_objects() -> dict[int, Objects]:
    """Schema version -> the objects a deepscope writer leaves at that version, built by
    running the writer's own migrations on an in-memory database."""
    from deepscope.store.schema import SCHEMA_VERSION, create_or_upgrade

    out: dict[int, Objects] = {}
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for version in range(1, SCHEMA_VERSION + 1):
            create_or_upgrade(conn, version - 1, version)
            out[version] = _objects(conn)
    finally:
        conn.close()
    return out


@lru_cache(maxsize=1)
def _allowed() -> dict[tuple[str, str], frozenset[str]]:
    """(type, name) -> the SQL deepscope ever gave that object (any schema version)."""
    out: dict[tuple[str, str], set[str]] = {}
    for objects in expected_objects().values():
        for key, sql in objects.items():
            out.setdefault(key, set()).add(sql)
    return {key: frozenset(v) for key, v in out.items()}


def _objects(conn: sqlite3.Connection) -> Objects:
    rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")
    return {(str(t), str(n)): normalise_sql(str(s)) for t, n, s in rows}


def verify_schema(conn: sqlite3.Connection, *, allow_empty: bool = False) -> int:
    """Raise `SchemaProblem` unless `conn` holds a store deepscope wrote; returns its schema
    version. `NotInitialised` for an empty database unless `allow_empty` (the writer creates
    it then). Run it inside the transaction that reads, so the checked schema is the one read.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall()
    return _check(version, tuple(rows), allow_empty)


@lru_cache(maxsize=256)  # keyed by the whole schema text: a changed schema is checked anew
def _check(version: Any, rows: tuple[tuple[Any, ...], ...], allow_empty: bool) -> int:
    from deepscope.store.schema import SCHEMA_VERSION

    for typ, name, _tbl, sql in rows:
        if typ in ("view", "trigger"):
            raise SchemaProblem(
                f"it holds a {typ} {str(name)[:60]!r}, which deepscope never creates (a view or "
                "trigger can run any query, even an endless one, inside a plain read)"
            )
        if typ == "table" and isinstance(sql, str) and "virtual" in sql[:40].lower():
            raise SchemaProblem(f"it holds a virtual table {str(name)[:60]!r}")
    if not isinstance(version, int) or version < 0:
        raise SchemaProblem(f"its schema version {version!r} is not a number")
    if version == 0:
        if not rows and allow_empty:
            return 0
        if not rows:
            raise NotInitialised("it is empty (not initialised yet)")
        raise SchemaProblem("it has tables but no deepscope schema version (not a deepscope run)")
    if version > SCHEMA_VERSION:  # a newer writer: its SQL is unknown here; no code objects
        return int(version)
    want = expected_objects()[version]
    allowed = _allowed()
    ours = {name for (_t, name) in allowed}
    have: set[tuple[str, str]] = set()
    for typ, name, tbl, sql in rows:
        key = (str(typ), str(name))
        if sql is None:  # an automatic index (UNIQUE / PRIMARY KEY): no code in it
            continue
        if key in allowed:
            if normalise_sql(str(sql)) not in allowed[key]:
                raise SchemaProblem(f"its {typ} {name!r} is not the one deepscope creates")
            have.add(key)
        elif name in ours or (typ != "table" and tbl in ours):
            raise SchemaProblem(f"it holds a {typ} {str(name)[:60]!r} deepscope never creates")
    missing = sorted(name for (typ, name) in want if (typ, name) not in have)
    if missing:
        raise SchemaProblem(f"it lacks {', '.join(missing)} (schema {version}): truncated?")
    return int(version)


# ---- deadlines ------------------------------------------------------------------------------
def set_deadline(conn: sqlite3.Connection, seconds: float) -> Callable[[], bool]:
    """Interrupt every statement of `conn` that runs past ``now + seconds``; returns a
    function telling whether the deadline has passed."""
    deadline = time.monotonic() + max(0.0, seconds)

    def expired() -> bool:
        return time.monotonic() > deadline

    conn.set_progress_handler(expired, PROGRESS_OPS)
    # busy waits are not VM instructions: bound them by the deadline too
    conn.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000))}")
    return expired


# ---- values ---------------------------------------------------------------------------------
def _bad(what: str, v: Any, expected: str) -> BadValue:
    return BadValue(f"{what} holds {type(v).__name__} {str(v)[:40]!r}, not {expected}")


def as_int(v: Any, what: str) -> int:
    if type(v) is not int:
        raise _bad(what, v, "an integer")
    return v


def as_opt_int(v: Any, what: str) -> int | None:
    return None if v is None else as_int(v, what)


def as_float(v: Any, what: str) -> float:
    if type(v) is float or type(v) is int:
        return float(v)
    raise _bad(what, v, "a number")


def as_opt_float(v: Any, what: str) -> float | None:
    return None if v is None else as_float(v, what)


def as_str(v: Any, what: str) -> str:
    if type(v) is not str:
        raise _bad(what, v, "text")
    return v


def as_opt_str(v: Any, what: str) -> str | None:
    return None if v is None else as_str(v, what)


def as_bytes(v: Any, what: str, itemsize: int = 1) -> bytes:
    if type(v) is not bytes or len(v) % itemsize:
        raise _bad(what, v, f"a blob of {itemsize}-byte items")
    return v
