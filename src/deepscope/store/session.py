"""Writer-side rows about the run itself: the ``run`` row and this process's ``session``."""

from __future__ import annotations

import math
import os
import socket
import sqlite3
import time
from dataclasses import dataclass

from deepscope.store.liveness import process_id
from deepscope.store.schema import immediate


@dataclass(frozen=True)
class WriterOptions:
    durability: str = "normal"  # "normal" (synchronous=NORMAL) or "full" (synchronous=FULL)
    strict: bool = False  # raise StoreError in the caller instead of degrading
    flush_interval: float = 1.0
    batch_items: int = 5_000  # wake the writer early when this many items wait
    max_queue: int = 100_000  # then log() blocks (back-pressure) ...
    max_queue_bytes: int = 256 * 1024 * 1024  # ... or when queued blob bytes exceed this
    queue_timeout: float = 30.0  # ... for at most this long, then drops (counted)
    heartbeat_interval: float = 5.0
    checkpoint_bytes: int = 8 * 1024 * 1024  # TRUNCATE-checkpoint when the WAL grows past it
    created: float | None = None  # the run's creation time if this writer creates it (migrate)

    def __post_init__(self) -> None:
        if self.durability not in ("normal", "full"):
            raise ValueError(f"durability must be 'normal' or 'full', not {self.durability!r}")
        if not (self.flush_interval > 0 and math.isfinite(self.flush_interval)):
            raise ValueError(
                f"flush_interval must be a positive number of seconds, not {self.flush_interval!r}"
            )
        if self.created is not None and not math.isfinite(self.created):
            raise ValueError(f"created must be a finite unix time, not {self.created!r}")


def bump(conn: sqlite3.Connection) -> None:
    """Advance the change counter readers poll (inside a write transaction)."""
    conn.execute("UPDATE counter SET version = version + 1 WHERE id = 1")


def start_session(
    conn: sqlite3.Connection,
    name: str,
    config_json: str,
    session_id: int | None,
    parent_session: int | None,
    *,
    created: float | None = None,
) -> int:
    """Create the run row if missing (created at `created`, default now), and this
    process's session row unless `session_id` is already this process's; returns the
    session id. One write transaction."""
    now = time.time()
    with immediate(conn):
        conn.execute(
            "INSERT OR IGNORE INTO run (id, name, created, config, schema_version) "
            "VALUES (1, ?, ?, ?, (SELECT MAX(version) FROM migration))",
            (name, now if created is None else created, config_json),
        )
        if config_json != "{}":
            conn.execute("UPDATE run SET config = ? WHERE id = 1 AND config = '{}'", (config_json,))
        row = None
        if session_id is not None:
            row = conn.execute(
                "SELECT id FROM session WHERE id = ? AND pid = ?", (session_id, os.getpid())
            ).fetchone()
        if row is None:
            cur = conn.execute(
                "INSERT INTO session (pid, host, parent, started, heartbeat, proc_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (os.getpid(), socket.gethostname(), parent_session, now, now, process_id()),
            )
            session_id = cur.lastrowid
        bump(conn)
    assert session_id is not None
    return session_id


def end_session(conn: sqlite3.Connection, session_id: int | None, state: str) -> None:
    """Mark the session ended in `state`, then try a passive checkpoint."""
    now = time.time()
    with immediate(conn):
        conn.execute(
            "UPDATE session SET ended = ?, heartbeat = ?, state = ? WHERE id = ?",
            (now, now, state, session_id),
        )
        bump(conn)
    try:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.Error:
        pass
