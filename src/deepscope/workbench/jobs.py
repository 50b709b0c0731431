"""The workbench's job scheduler: one computation per request key, cached, cancellable.

Standard library only (the server sees jobs through `deepscope.server.routes.workbench`'s
protocols and never imports torch). Each *lane* is one worker thread with its own context
(a `LiveModel` on its own copy of the model), so a slow view in the ``slow`` lane never
blocks the ``fast`` one, and two views never run hooks on one model at once.

- `Scheduler.submit(key, lane, fn)` returns the cached result's job, joins an identical job
  already queued or running (one computation per key; every caller waits on it), or
  queues a new one.
- Every caller `release()`s its job when it stops waiting (its client went away); a job
  whose callers all left before it started is dropped, never computed. A *running* job
  whose callers all left is asked to stop: it leaves the single-flight table at once (the
  next identical request queues a fresh computation) and raises `Cancelled` at its next
  checkpoint (`checkpoint()`, called by every `progress` report and, in the workbench, by a
  forward pre-hook on every module: between layers, batches and attribution steps). It
  ends ``cancelled`` and is never cached, even if it finished before reaching a checkpoint.
- A finished result is kept in an LRU cache bounded by bytes; errors are not cached.

Example:
    >>> s = Scheduler({"fast": None})
    >>> job = s.submit("k", "fast", lambda ctx, progress: Outcome({"x": 1}))
    >>> job.wait(5) and job.result.meta
    {'x': 1}
    >>> s.close()
"""

from __future__ import annotations

import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Cancelled", "Job", "Outcome", "Scheduler", "checkpoint"]

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "error", "cancelled"

_current = threading.local()  # .job: the job this worker thread is computing


class Cancelled(Exception):  # noqa: N818 - a state, not a failure
    """Raised at a checkpoint of a running job that every caller left."""


def checkpoint() -> None:
    """Raise `Cancelled` when the job computing on this thread was asked to stop; a no-op
    on any other thread (the user's own calls of a hooked model)."""
    job: Job | None = getattr(_current, "job", None)
    if job is not None and job.stop_requested.is_set():
        raise Cancelled(f"{job.label}: every request for it went away")


@dataclass
class Outcome:
    """What a view computation returns: JSON-able `meta` and named binary parts (numpy
    arrays or PNG bytes)."""

    meta: dict[str, Any]
    parts: dict[str, Any] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        """Bytes held by the parts (for the cache bound)."""
        total = 1024
        for value in self.parts.values():
            total += int(value.nbytes) if hasattr(value, "nbytes") else len(value)
        return total


Progress = Callable[[float | None, str], None]
Compute = Callable[[Any, Progress], Outcome]


class Job:
    """One computation of one request key; callers wait on it and `release()` it."""

    def __init__(self, key: str, lane: str, fn: Compute, label: str) -> None:
        self.key = key
        self.lane = lane
        self.label = label
        self.fn = fn
        self.state = QUEUED
        self.waiters = 0
        self.created = time.monotonic()
        self.started: float | None = None
        self.finished: float | None = None
        self.progress: float | None = None
        self.note = ""
        self.result: Outcome | None = None
        self.error: str | None = None
        self.error_type = ""
        self.stop_requested = threading.Event()  # every caller left while it ran
        self._event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._release: Callable[[Job], None] = lambda job: None

    def done(self) -> bool:
        """Finished (with a result or an error) or cancelled."""
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until done; False on timeout."""
        return self._event.wait(timeout)

    def add_done_callback(self, fn: Callable[[], None]) -> None:
        """Call `fn()` (from the worker thread) when done; at once if it already is."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(fn)
                return
        fn()

    def release(self) -> None:
        """This caller stops waiting (its client went away)."""
        self._release(self)

    def _finish(self, state: str) -> None:
        with self._lock:
            self.state = state
            self.finished = time.monotonic()
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn()

    def status(self) -> dict[str, Any]:
        """State, label, seconds waited/run, progress and note (for the progress route)."""
        now = time.monotonic()
        return {
            "key": self.key,
            "label": self.label,
            "lane": self.lane,
            "state": self.state,
            "waiters": self.waiters,
            "seconds": round(now - (self.started or self.created), 3),
            "progress": self.progress,
            "note": self.note,
            "position": None,
        }


class Scheduler:
    """Lanes of one worker thread each (`contexts`: lane name -> the object handed to every
    computation of that lane), a single-flight table and a byte-bounded result cache."""

    def __init__(self, contexts: dict[str, Any], *, cache_bytes: int = 512 * 1024 * 1024) -> None:
        self._contexts = contexts
        self._queues: dict[str, queue.Queue[Job | None]] = {
            lane: queue.Queue() for lane in contexts
        }
        self._lock = threading.Lock()
        self._inflight: dict[str, Job] = {}
        self._cache: OrderedDict[str, Job] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._held = 0
        self.computed = 0  # computations started (tests: one per key)
        self.skipped = 0  # queued jobs dropped because every caller left
        self.cancelled = 0  # running jobs stopped because every caller left
        self._stopping: dict[int, Job] = {}  # asked to stop, not yet at a checkpoint
        self._threads = [
            threading.Thread(target=self._work, args=(lane,), name=f"deepscope-{lane}", daemon=True)
            for lane in contexts
        ]
        for t in self._threads:
            t.start()

    def submit(self, key: str, lane: str, fn: Compute, label: str = "") -> Job:
        """The job for `key`: cached, in flight (joined), or newly queued on `lane`. The
        caller must `release()` it if it stops waiting before it is done."""
        if lane not in self._queues:
            raise ValueError(f"no lane {lane!r}")
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            job = self._inflight.get(key)
            if job is None:
                job = Job(key, lane, fn, label or key)
                job._release = self._released
                self._inflight[key] = job
                self._queues[lane].put(job)
            job.waiters += 1
            return job

    def get(self, key: str) -> Job | None:
        """The finished, cached job of `key`, if any."""
        with self._lock:
            return self._cache.get(key)

    def jobs(self) -> list[dict[str, Any]]:
        """Status of every queued or running job, oldest first, with its queue position."""
        with self._lock:
            live = [*self._inflight.values(), *self._stopping.values()]
            jobs = sorted(live, key=lambda j: j.created)
        out = []
        ahead: dict[str, int] = {}
        for job in jobs:
            row = job.status()
            if job.stop_requested.is_set():
                row["state"] = "cancelling"
            elif job.state == QUEUED:
                row["position"] = ahead.get(job.lane, 0)
            ahead[job.lane] = ahead.get(job.lane, 0) + 1
            out.append(row)
        return out

    def _released(self, job: Job) -> None:
        cancel = False
        with self._lock:
            job.waiters = max(0, job.waiters - 1)
            mine = self._inflight.get(job.key) is job
            if job.waiters == 0 and mine and job.state == QUEUED:
                del self._inflight[job.key]
                job.state = CANCELLED
                cancel = True
            elif job.waiters == 0 and mine and job.state == RUNNING:
                del self._inflight[job.key]  # a new request for the key computes afresh
                self._stopping[id(job)] = job
                job.stop_requested.set()
        if cancel:
            job._finish(CANCELLED)

    def _work(self, lane: str) -> None:
        q = self._queues[lane]
        ctx = self._contexts[lane]
        while True:
            job = q.get()
            if job is None:
                return
            with self._lock:
                if job.state != QUEUED:  # cancelled while queued: never computed
                    self.skipped += 1
                    continue
                job.state = RUNNING
                job.started = time.monotonic()
                self.computed += 1

            def progress(fraction: float | None, note: str, job: Job = job) -> None:
                job.progress, job.note = fraction, note
                checkpoint()

            _current.job = job
            try:
                job.result = job.fn(ctx, progress)
                state = DONE
            except Cancelled:
                state = CANCELLED
            except Exception as exc:  # noqa: BLE001 - the error is the view's answer
                job.error = str(exc) or type(exc).__name__
                job.error_type = type(exc).__name__
                state = FAILED
            finally:
                _current.job = None
            with self._lock:
                if self._inflight.get(job.key) is job:
                    del self._inflight[job.key]
                self._stopping.pop(id(job), None)
                if job.stop_requested.is_set():  # every caller left: never a cached answer
                    state, job.result, job.error = CANCELLED, None, None
                if state == CANCELLED:
                    self.cancelled += 1
                if state == DONE and job.result is not None:
                    self._cache[job.key] = job
                    self._held += job.result.nbytes
                    while self._held > self._cache_bytes and len(self._cache) > 1:
                        _, old = self._cache.popitem(last=False)
                        self._held -= old.result.nbytes if old.result else 0
            job._finish(state)

    def close(self) -> None:
        """Stop the workers after the job each is running."""
        for q in self._queues.values():
            q.put(None)
