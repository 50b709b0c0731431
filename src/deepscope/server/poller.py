"""`VersionPoller`: one poller shared by every ``/api/stream`` connection (docs/threats.md D8).

Before, each SSE stream polled each of its runs every interval in its own worker thread:
100 streams x 100 runs made 20,000 queries a second and ``/api/runs`` took seconds. Now:

- streams `subscribe` their runs; whichever stream finds a poll due runs it (one poll in
  flight at a time, at most one per `interval`); the others wait for it to finish;
- a poll only ``stat``\\ s each subscribed ``run.db`` (+ WAL; a database store: one query for
  every subscribed run's version instead); it queries `version()` (through
  the `ReadGate`, with its deadline) only for runs whose files changed since the last poll,
  so idle runs cost no query at all and a hostile run cannot stall the poller for long.

Example:
    >>> poller = VersionPoller(root, gate, open_version, interval=0.5)  # doctest: +SKIP
    >>> poller.subscribe(["alpha"]); await poller.wait_tick(15.0)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio
import anyio.to_thread

from deepscope.errors import NotFoundError
from deepscope.server.gate import ReadGate
from deepscope.server.listing import Stamp, confined_db, db_stamp

__all__ = ["VersionPoller"]

POLL_READS = 8  # version queries of one poll in flight at once
POLL_DEADLINE_S = 2.0  # version() is one row; a run slower than this waits for its next write


class VersionPoller:
    """Latest store version of every subscribed run, refreshed by one shared poll loop."""

    def __init__(
        self,
        root: Path,
        gate: ReadGate,
        read_version: Callable[[str], int],
        *,
        interval: float,
        stamps: Callable[[list[str]], dict[str, Stamp | None]] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.stamps = stamps or self._stamps_of  # a database store: its runs' versions
        self.gate = gate
        self.read_version = read_version
        self.interval = interval
        self.versions: dict[str, int | None] = {}
        self._subs: Counter[str] = Counter()
        self._stamps: dict[str, Stamp | None] = {}
        self._tick: anyio.Event | None = None
        self._polling = False
        self._next = 0.0
        self.polls = 0  # counters read by tests and the benchmark
        self.queries = 0
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def streams(self) -> int:
        """Subscriptions now open (one per stream and run)."""
        return sum(self._subs.values())

    def subscribe(self, runs: Iterable[str]) -> None:
        """Start tracking `runs` (call `unsubscribe` with the same names when done)."""
        self._subs.update(runs)

    def unsubscribe(self, runs: Iterable[str]) -> None:
        """Stop tracking `runs` for one stream; a run nobody follows is forgotten."""
        self._subs.subtract(runs)
        for run in [r for r, n in self._subs.items() if n <= 0]:
            del self._subs[run]
            self.versions.pop(run, None)
            self._stamps.pop(run, None)

    def knows(self, runs: Iterable[str]) -> bool:
        """Whether a poll has looked at every one of `runs` since they were subscribed."""
        return all(run in self._stamps for run in runs)

    def _event(self) -> anyio.Event:
        if self._tick is None:
            self._tick = anyio.Event()
        return self._tick

    async def wait_tick(self, timeout: float) -> None:
        """Return after the next poll finishes (running it here when one is due and none is
        in flight), or after `timeout` seconds."""
        give_up = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if not self._polling and now >= self._next:
                await self._poll()
                return
            tick = self._event()
            until = give_up if self._polling else min(give_up, self._next)
            with anyio.move_on_after(max(0.0, until - now)):
                await tick.wait()
                return
            if time.monotonic() >= give_up:
                return

    def _stamps_of(self, runs: list[str]) -> dict[str, Stamp | None]:
        """Stamps of `runs` (in a worker thread; touches no shared state)."""
        out: dict[str, Stamp | None] = {}
        for run in runs:
            try:
                out[run] = db_stamp(confined_db(self.root, run))
            except (OSError, NotFoundError):  # gone, or a link out of the log folder
                out[run] = None
        return out

    async def _poll(self) -> None:
        self._polling = True
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            stamps = await anyio.to_thread.run_sync(self.stamps, list(self._subs))
            changed = []
            for run, stamp in stamps.items():
                if run not in self._subs:
                    continue  # its last stream closed meanwhile
                if stamp is None:
                    self.versions[run] = None
                elif stamp != self._stamps.get(run):
                    changed.append(run)
                self._stamps[run] = stamp
            slots = anyio.Semaphore(POLL_READS)

            async def one(run: str) -> None:
                async with slots:
                    self.queries += 1
                    try:
                        version: int | None = await self.gate.call(
                            [run], self.read_version, run, deadline=POLL_DEADLINE_S
                        )
                    except Exception:  # noqa: BLE001 - deleted, busy, corrupt or past the deadline:
                        version = None  # nothing to report; retried once its files change
                    if run in self._subs:
                        self.versions[run] = version

            async with anyio.create_task_group() as tg:
                for run in changed:
                    tg.start_soon(one, run)
            self.polls += 1
        finally:
            self._polling = False
            self.in_flight -= 1
            self._next = time.monotonic() + self.interval
            tick, self._tick = self._event(), anyio.Event()
            tick.set()
