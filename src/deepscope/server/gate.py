"""`ReadGate`: every read of a run goes through here (docs/threats.md S10, D8).

A hostile ``run.db`` (a VIEW with an endless recursive query) can keep a worker thread busy
for as long as its query runs. Without a bound, one such run takes every worker thread and
the whole dashboard stops answering. The gate bounds what one run can hold:

- at most `per_run` reads of the same run run at once; more wait (asynchronously, holding no
  thread) up to `wait` seconds, then get a 503 `RunBusyError`;
- reads run on the gate's own thread limiter (`threads` tokens), not the one static files
  and other sync routes use;
- a raw SQLite, value or type error from a run's file is a 422 `RunReadError` for that run;
- a read that takes longer than `deadline` seconds is abandoned: the request gets a 503
  `ReadTimeoutError` at once. Its thread keeps the run's slot until the query really ends
  (the store's own deadline, a progress handler, ends it), so a hostile run can never hold
  more than `per_run` threads, however many requests name it.

Example:
    >>> gate = ReadGate(per_run=4, wait=10.0, deadline=10.0)
    >>> # value = await gate.call(["alpha"], reader.info)  # doctest: +SKIP
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import anyio
import anyio.to_thread

from deepscope.errors import DeepscopeError

__all__ = ["ReadGate", "ReadTimeoutError", "RunBusyError", "RunReadError"]

T = TypeVar("T")
_RETRY_S = 0.02  # how often a waiting request looks for a free slot


class RunBusyError(DeepscopeError):
    """Too many reads of one run are in flight (a slow or hostile run.db); retry later."""

    http_status = 503


class ReadTimeoutError(DeepscopeError):
    """A read of a run took longer than the server's deadline (a huge or hostile run.db)."""

    http_status = 503


class RunReadError(DeepscopeError):
    """A run's ``run.db`` failed to read with a raw SQLite or type error (corrupt, truncated,
    wrongly typed). The store raises its own typed error for these; this is the server's
    last line, so a bad file is a 422 for that run and never a 500."""

    http_status = 422


class _Call:
    """One gated call: 'pending' until its thread starts, then 'running'; 'abandoned'
    when the request gave up before the thread started (the thread then does nothing)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = "pending"


class ReadGate:
    """Bounded concurrency per run plus a deadline for every read. Thread-safe; one per app."""

    def __init__(
        self, *, per_run: int = 4, wait: float = 10.0, deadline: float = 15.0, threads: int = 32
    ) -> None:
        self.per_run = per_run
        self.wait = wait
        self.deadline = deadline
        self.threads = threads
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._limiter: anyio.CapacityLimiter | None = None
        self.started = 0  # reads that reached a thread (tests and benchmarks read these)
        self.refused = 0
        self.timed_out = 0

    def in_flight(self, run: str) -> int:
        """Reads of `run` holding a slot now (running, or abandoned and still running)."""
        with self._lock:
            return self._in_flight.get(run, 0)

    def _try_take(self, runs: Sequence[str]) -> bool:
        with self._lock:
            if any(self._in_flight.get(r, 0) >= self.per_run for r in runs):
                return False
            for r in runs:
                self._in_flight[r] = self._in_flight.get(r, 0) + 1
            return True

    def _give_back(self, runs: Sequence[str]) -> None:
        with self._lock:
            for r in runs:
                left = self._in_flight.get(r, 0) - 1
                if left > 0:
                    self._in_flight[r] = left
                else:
                    self._in_flight.pop(r, None)

    async def _take(self, runs: Sequence[str]) -> None:
        give_up = time.monotonic() + self.wait
        while not self._try_take(runs):
            if time.monotonic() >= give_up:
                self.refused += 1
                busy = ", ".join(repr(r[:80]) for r in runs if self.in_flight(r) >= self.per_run)
                raise RunBusyError(
                    f"run {busy} is busy: {self.per_run} slow reads are still running (a huge "
                    "or damaged run.db?); retry in a moment, or remove the run from the log folder"
                )
            await anyio.sleep(_RETRY_S)

    def _threads(self) -> anyio.CapacityLimiter:
        if self._limiter is None:  # created in the event loop, on first use
            self._limiter = anyio.CapacityLimiter(self.threads)
        return self._limiter

    async def call(
        self,
        runs: Sequence[str],
        fn: Callable[..., T],
        *args: object,
        deadline: float | None = None,
    ) -> T:
        """`fn(*args)` in a worker thread, holding one slot of each run in `runs`."""
        keys = sorted(set(runs))
        await self._take(keys)
        call = _Call()
        lock = self._lock

        def run() -> T:
            with lock:
                if call.state == "abandoned":
                    raise ReadTimeoutError("abandoned before it started")
                call.state = "running"
                self.started += 1
            try:
                return fn(*args)
            except (sqlite3.Error, ValueError, TypeError) as exc:
                if not keys:
                    raise
                names = ", ".join(repr(r[:80]) for r in keys)
                raise RunReadError(
                    f"run {names} cannot be read ({type(exc).__name__}: {str(exc)[:200]}); "
                    "its run.db is damaged: see /api/runs, or remove it from the log folder"
                ) from exc
            finally:
                self._give_back(keys)

        limit = self.deadline if deadline is None else deadline
        try:
            with anyio.move_on_after(limit):
                return await anyio.to_thread.run_sync(
                    run, abandon_on_cancel=True, limiter=self._threads()
                )
            self.timed_out += 1
            names = ", ".join(repr(r[:80]) for r in keys) or "the model"
            raise ReadTimeoutError(
                f"reading {names} took longer than {limit:g} s (a huge or damaged run.db?); "
                "the read was abandoned"
            )
        finally:
            with lock:
                mine = call.state == "pending"  # never reached a thread: the slot is ours
                if mine:
                    call.state = "abandoned"  # so the thread, if it starts, does nothing
            if mine:  # after the lock: `_give_back` takes it (a Lock is not re-entrant)
                self._give_back(keys)
