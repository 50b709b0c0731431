"""The projector's worker: projections run in a separate process, never in the server.

`ProjectorManager` (in the server process, which imports neither torch nor numpy here)
keeps the jobs, one pending queue and one worker process started with the ``spawn``
context. One computation runs at a time; a request whose key is already queued, running or
done shares that job (two identical requests compute once). `cancel` drops a queued job at
once; a running t-SNE stops at its next callback (every 25 iterations), and a method that
cannot stop (PCA, UMAP) is ended by terminating the worker after `CANCEL_GRACE` seconds (the
next job starts a fresh one). Progress, partial t-SNE layouts (every few hundred
iterations) and results come back on a result queue read by a listener thread; each change
is an event for ``/api/stream`` (``event: projection``).

The worker (`worker_main`) reads the chunks of the embedding, runs `deepscope.project`,
and caches the coordinates, so a restarted server answers the same request at once. In a
log directory (SQLite) the chunks are the run's blob files and the cache is a file in the
run's blob folder (`cache_path`; never a row of ``run.db``, so a live run's session and
status are untouched). In a PostgreSQL store (`JobSpec.store` is its URL) the worker reads
the chunks through the store contract (`RunReader.read_blob`) and caches the result in the
table ``deepscope.projection`` (`deepscope.store.postgres.projections`), never through a
run writer. The URL (it may hold a password) is in no repr; the worker's error messages go
through `deepscope.store.postgres.url.scrub`.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepscope.store.protocol import BlobInfo

__all__ = ["CANCEL_GRACE", "Job", "JobSpec", "ProjectorManager", "worker_main"]

CANCEL_GRACE = 3.0
MAX_EVENTS = 1000
MAX_JOBS = 64
MAX_RESULTS_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class JobSpec:
    """What to compute: the run's folder and name, the embedding's chunk files (absolute,
    already confined to the run folder), and the method's options. For a database store:
    `store` (its URL, kept out of the repr) and `blobs` (the chunks, read with
    `RunReader.read_blob`) instead of `chunks`."""

    key: str
    logdir: str
    run: str
    run_dir: str
    tag: str
    step: int
    chunks: tuple[str, ...]
    n: int
    dim: int
    method: str
    dims: int
    seed: int
    params: dict[str, Any]
    store: str = field(default="", repr=False)
    blobs: tuple[BlobInfo, ...] = ()


@dataclass
class Job:
    """A projection's state, as the routes see it."""

    spec: JobSpec
    state: str = "queued"
    progress: float = 0.0
    message: str | None = None
    dropped: int | None = None
    result: bytes | None = None
    partial: bytes | None = None
    started: float = field(default_factory=time.monotonic)
    cancel_at: float | None = None

    def answer(self) -> dict[str, Any]:
        """The job as ``POST /api/projector/project`` answers it (`ProjectorJob`)."""
        out: dict[str, Any] = {"key": self.spec.key, "state": self.state,
                               "progress": round(self.progress, 4)}  # fmt: skip
        if self.message is not None:
            out["message"] = self.message
        if self.dropped is not None:
            out["dropped"] = self.dropped
        return out


class ProjectorManager:
    """Jobs, the pending queue, the worker process and the event feed (see module doc)."""

    def __init__(self) -> None:
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._pending: collections.deque[str] = collections.deque()
        self._running: str | None = None
        self._proc: Any = None
        self._requests: Any = None
        self._results: Any = None
        self._listener: threading.Thread | None = None
        self._events: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(
            maxlen=MAX_EVENTS
        )
        self._seq = 0
        self._closed = False
        self.computations = 0
        """How many jobs were handed to a worker (tests: identical requests compute once)."""

    # ---- the routes' side ---------------------------------------------------------------
    def job(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def submit(self, spec: JobSpec) -> Job:
        """The job for `spec.key`: the existing one unless it failed or was cancelled."""
        with self._lock:
            job = self._jobs.get(spec.key)
            if job is not None and job.state in ("queued", "running", "done"):
                return job
            job = Job(spec)
            self._jobs[spec.key] = job
            self._jobs.move_to_end(spec.key)
            self._pending.append(spec.key)
            self._emit(job)
            self._trim()
            self._dispatch()
            return job

    def adopt(self, spec: JobSpec, result: bytes, dropped: int) -> Job:
        """A job already done (its result found in the run's blobs)."""
        with self._lock:
            job = Job(spec, state="done", progress=1.0, result=result, dropped=dropped)
            self._jobs[spec.key] = job
            self._trim()
            return job

    def cancel(self, key: str) -> bool:
        """Stop job `key` if it is queued or running; whether anything was cancelled."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.state not in ("queued", "running"):
                return False
            if job.state == "queued":
                self._pending.remove(key)
                self._finish(job, "cancelled", None)
                return True
            if job.cancel_at is None:
                job.cancel_at = time.monotonic() + CANCEL_GRACE
                self._requests.put(("cancel", key))
            return True

    def events_since(self, seq: int, runs: set[str]) -> tuple[int, list[dict[str, Any]]]:
        """Events after `seq` for `runs`, and the latest sequence number."""
        with self._lock:
            out = [e for s, e in self._events if s > seq and e["run"] in runs]
            return self._seq, out

    @property
    def seq(self) -> int:
        return self._seq

    def close(self) -> None:
        """Stop the worker process (jobs in flight are lost)."""
        with self._lock:
            self._closed = True
            self._stop_worker()

    # ---- internals ----------------------------------------------------------------------
    def _emit(self, job: Job, partial: bool = False) -> None:
        self._seq += 1
        self._events.append((self._seq, {"run": job.spec.run, "key": job.spec.key,
                                         "state": job.state, "progress": round(job.progress, 4),
                                         "partial": partial}))  # fmt: skip

    def _trim(self) -> None:
        """Forget the oldest finished jobs past `MAX_JOBS`, and results past the byte cap
        (they stay in the run's blobs)."""
        finished = [k for k, j in self._jobs.items() if j.state not in ("queued", "running")]
        while len(self._jobs) > MAX_JOBS and finished:
            self._jobs.pop(finished.pop(0))
        total = 0
        for job in reversed(self._jobs.values()):
            size = len(job.result or b"") + len(job.partial or b"")
            if total + size > MAX_RESULTS_BYTES:
                job.result = job.partial = None
                if job.state == "done":
                    job.state = "evicted"
            total += size
        for key in [k for k, j in self._jobs.items() if j.state == "evicted"]:
            self._jobs.pop(key)

    def _finish(self, job: Job, state: str, message: str | None) -> None:
        job.state, job.message = state, message
        if state == "done":
            job.progress = 1.0
        job.partial = None if state == "done" else job.partial
        self._emit(job)

    def _dispatch(self) -> None:
        if self._running is not None or not self._pending or self._closed:
            return
        key = self._pending.popleft()
        job = self._jobs[key]
        self._ensure_worker()
        job.state = "running"
        job.started = time.monotonic()
        self._running = key
        self.computations += 1
        self._requests.put(("job", job.spec))
        self._emit(job)

    def _ensure_worker(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            return
        self._stop_worker()
        self._requests = self._ctx.Queue()
        self._results = self._ctx.Queue()
        self._proc = self._ctx.Process(
            target=worker_main,
            args=(self._requests, self._results),
            name="deepscope-projector",
            daemon=True,
        )
        self._proc.start()
        self._listener = threading.Thread(
            target=self._listen, args=(self._proc, self._results), daemon=True,
            name="deepscope-projector-listener",
        )  # fmt: skip
        self._listener.start()

    def _stop_worker(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.is_alive():
            proc.terminate()
        proc.join(timeout=5)
        for q in (self._requests, self._results):
            if q is not None:
                q.cancel_join_thread()
                q.close()

    def _listen(self, proc: Any, results: Any) -> None:
        while True:
            try:
                msg = results.get(timeout=0.25)
            except queue.Empty:
                msg = None
            except (EOFError, OSError, ValueError):
                msg = None
            with self._lock:
                if proc is not self._proc:
                    return  # a newer worker replaced this one
                if msg is not None:
                    self._on_message(msg)
                self._check_worker(proc)

    def _check_worker(self, proc: Any) -> None:
        key = self._running
        job = None if key is None else self._jobs.get(key)
        if job is not None and job.cancel_at is not None and time.monotonic() > job.cancel_at:
            self._stop_worker()  # the method did not stop by itself (PCA, UMAP)
            self._running = None
            self._finish(job, "cancelled", None)
            self._dispatch()
        elif not proc.is_alive() and self._proc is proc:
            self._proc = None
            if job is not None:
                self._running = None
                code = proc.exitcode
                self._finish(job, "error", f"the projection worker stopped (exit code {code}; "
                                           "out of memory?)")  # fmt: skip
            self._dispatch()

    def _on_message(self, msg: tuple[Any, ...]) -> None:
        kind, key = msg[0], msg[1]
        job = self._jobs.get(key)
        if job is None:
            return
        if kind == "progress":
            job.progress = float(msg[2])
            if msg[3] is not None:
                job.partial = msg[3]
            self._emit(job, partial=msg[3] is not None)
            return
        if kind == "done":
            job.result, job.dropped = msg[2], int(msg[3])
            self._finish(job, "done", None)
        elif kind == "cancelled":
            self._finish(job, "cancelled", None)
        else:
            self._finish(job, "error", str(msg[2]))
        if self._running == key:
            self._running = None
        self._trim()
        self._dispatch()


# ---- the worker process -------------------------------------------------------------------
def worker_main(requests: Any, results: Any) -> None:
    """The worker process: a reader thread takes jobs and cancels; the main thread computes."""
    jobs: queue.Queue[JobSpec | None] = queue.Queue()
    cancelled: set[str] = set()

    def read() -> None:
        while True:
            try:
                msg = requests.get()
            except (EOFError, OSError):
                jobs.put(None)
                return
            if msg[0] == "job":
                jobs.put(msg[1])
            elif msg[0] == "cancel":
                cancelled.add(msg[1])
            else:
                jobs.put(None)
                return

    threading.Thread(target=read, daemon=True).start()
    while True:
        spec = jobs.get()
        if spec is None:
            return
        try:
            if spec.key in cancelled:
                results.put(("cancelled", spec.key))
                continue
            coords, dropped, meta = _compute(spec, results, cancelled)
            blob = _encode(coords)
            _store(spec, blob, meta)
            results.put(("done", spec.key, blob, dropped))
        except _Stopped:
            results.put(("cancelled", spec.key))
        except Exception as exc:  # noqa: BLE001 - every failure is the job's error message
            from deepscope.errors import DeepscopeError

            text = str(exc) if isinstance(exc, DeepscopeError) else f"{type(exc).__name__}: {exc}"
            if spec.store:
                from deepscope.store.postgres.url import scrub

                text = scrub(text, spec.store)
            results.put(("error", spec.key, text))


class _Stopped(Exception):
    pass


_STORES: dict[str, Any] = {}  # the worker's open database stores, by URL
READ_DEADLINE = 120.0  # seconds one chunk read may take (a chunk is up to 32 MiB)


def _chunk_bytes(spec: JobSpec) -> list[bytes]:
    """The embedding's chunks: files of the run folder, or blobs read through the store
    contract from a database store."""
    if not spec.store:
        return [Path(p).read_bytes() for p in spec.chunks]
    store = _STORES.get(spec.store)
    if store is None:
        import deepscope.store

        store = _STORES[spec.store] = deepscope.store.open(spec.store, read_deadline=READ_DEADLINE)
    reader = store.run(spec.run)
    return [reader.read_blob(b) for b in spec.blobs]


def _load(spec: JobSpec) -> Any:
    import numpy as np

    from deepscope.views import envelope

    parts = [np.asarray(envelope.decode(data), np.float32) for data in _chunk_bytes(spec)]
    x = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
    if x.shape != (spec.n, spec.dim):
        raise ValueError(
            f"the stored chunks hold {x.shape}, the embedding says {(spec.n, spec.dim)}"
        )
    return x


def _encode(coords: Any) -> bytes:
    from deepscope.views import envelope

    return envelope.encode(coords, "float32")


def _compute(spec: JobSpec, results: Any, cancelled: set[str]) -> tuple[Any, int, dict[str, Any]]:
    import numpy as np

    from deepscope.analysis.projection import Cancelled, project
    from deepscope.analysis.projection.base import finite_rows

    x = _load(spec)
    mask = finite_rows(x)
    last = [0.0]

    def progress(fraction: float, partial: Any) -> bool:
        now = time.monotonic()
        if partial is not None or now - last[0] > 0.2:
            last[0] = now
            blob = None
            if partial is not None:
                full = np.full((spec.n, spec.dims), np.nan, np.float32)
                full[mask] = partial
                blob = _encode(full)
            results.put(("progress", spec.key, fraction, blob))
        return spec.key in cancelled

    options = dict(spec.params)
    if spec.method == "pca":
        options["backend"] = "numpy"  # importing torch would cost the worker seconds
    try:
        p = project(x, spec.method, spec.dims, spec.seed, cache=False, progress=progress,
                    **options)  # fmt: skip
    except Cancelled:
        raise _Stopped() from None
    meta = {
        "key": spec.key,
        "method": spec.method,
        "dims": spec.dims,
        "seed": spec.seed,
        "params": p.params,
        "dropped": p.dropped,
        "extras": {**p.extras, "explained_variance_ratio": p.explained_variance_ratio},
    }
    return p.coords, p.dropped, meta


def cache_path(run_dir: str | Path, key: str) -> Path:
    """Where projection `key` of a run is cached: ``<run>/blobs/projections/<key>.dsa``
    (an envelope) beside ``<key>.json`` (its meta). A plain file, not a row of ``run.db``: the
    server never opens a writer on a run (a live run keeps its own session and status)."""
    if not key.isalnum():
        raise ValueError(f"bad projection key {key!r}")
    return Path(run_dir) / "blobs" / "projections" / f"{key}.dsa"


def _store(spec: JobSpec, blob: bytes, meta: dict[str, Any]) -> None:
    """The result as a cached file of the run (written whole, then renamed into place), or
    a row of ``deepscope.projection`` in a database store; a read-only log folder (or a
    database user that may not write) keeps it in the server's memory only."""
    if spec.store:
        from deepscope.errors import StoreError
        from deepscope.store.postgres.projections import save_projection

        try:
            save_projection(spec.store, spec.run, spec.key, meta, blob)
        except StoreError:  # caching is optional
            pass
        return
    path = cache_path(spec.run_dir, spec.key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for target, data in ((path.with_suffix(".json"), json.dumps(meta).encode()), (path, blob)):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
    except OSError:  # caching is optional
        return
