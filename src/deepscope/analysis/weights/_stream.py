"""Statistics of many stored tensors in one sequential pass over their file(s).

`stream_accumulate(jobs)` walks each job's stored bits in blocks on the calling thread,
while `workers` threads compute on the blocks already there: the disk and the CPUs work
at the same time, and at most (workers + 2) blocks are in flight. A job with a file
descriptor (`fd`, `offset`) has each block (`MAP_BYTES`) memory-mapped on its own by the
worker that counts it (read-only, unmapped once counted): no copy out of the page cache,
which on this project's machines cost as much CPU as the counting, no hand-off between
threads, and resident memory stays at one block per worker; `_Prefetch` reads the parts
not cached yet ahead of them. Other jobs
are read with `fetch(start, stop, out)` into a small pool of reused `BLOCK_BYTES`
buffers.

float16 and bfloat16 jobs go through the C kernel of `_fast` when it is built (one pass,
~10-13x the histogram's speed). Other jobs of 1- and 2-byte dtypes with at least
`HIST_MIN` elements are counted in a `BitHistogram` (one `np.bincount` pass per
sub-chunk, exact); smaller and wider ones go through `chunk_stats`. Per-block results
are merged in block order (deterministic).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.analysis.weights._fast import HALF, HalfFormat, half_format, half_stats, warm
from deepscope.analysis.weights.stats import (
    CHUNK,
    HIST_CHUNK,
    BitHistogram,
    StatsAccumulator,
    chunk_stats,
)
from deepscope.errors import ModelFormatError

__all__ = ["BLOCK_BYTES", "MAP_BYTES", "StreamJob", "stream_accumulate"]

#: Bytes per read buffer: large enough for the disk, small enough to bound memory.
BLOCK_BYTES = 4 << 20
#: Bytes per mapped block at most: a block costs a map, its page faults and a call into
#: Python; larger blocks make fewer (1B fp16 parameters, cached: 4 MB 0.11 s, 16 MB
#: 0.073 s, 32 MB 0.070 s, 64 MB 0.070 s). Smaller files get smaller blocks, so that
#: every worker has several.
MAP_BYTES = 32 << 20
#: Mapped blocks start at file offsets that are multiples of this (a huge page): the
#: kernel then places them so that the page cache's large folios map as huge pages, with
#: ~500x fewer TLB entries to walk (1B fp16 parameters, cached, one thread: 0.19 s -> 0.12 s).
MAP_ALIGN = max(2 << 20, mmap.ALLOCATIONGRANULARITY)
#: Tensors with fewer elements skip the 65,536-bin histogram (its fixed cost).
HIST_MIN = 1 << 16
#: How far the prefetcher reads ahead of the blocks being mapped (page cache, not this
#: process's memory), and in what steps.
PREFETCH_BYTES = 256 << 20
PREFETCH_STEP = 8 << 20

Fetch = Callable[[int, int, NDArray[Any]], NDArray[Any]]


@dataclass
class StreamJob:
    """One tensor: `fetch(start, stop, out)` returns its flattened stored elements
    [start, stop) (read into `out` where it can), `size` elements of dtype `stored`,
    `decode` turning stored bits into numbers (bf16 / float8), or None. With `fd` >= 0
    the elements are mapped from that descriptor instead, element 0 at byte `offset`.
    `dtype` names the numbers ("float16", "bfloat16", ...): it picks the fused kernel."""

    key: str
    size: int
    stored: np.dtype[Any]
    fetch: Fetch
    decode: Callable[[NDArray[Any]], NDArray[Any]] | None = None
    fd: int = -1
    offset: int = 0
    dtype: str = ""
    _fmt: HalfFormat | None = field(default=None, repr=False)
    _hist: BitHistogram | None = field(default=None, repr=False)
    _left: int = field(default=0, repr=False)  # blocks of `_hist` not counted yet
    _step: int = field(default=1, repr=False)  # elements per block
    _done: StatsAccumulator | None = field(default=None, repr=False)
    # per block: its future (fetched), or its index in the mapped blocks' results
    _parts: list[Future[StatsAccumulator | None] | int] = field(default_factory=list, repr=False)


class _Scratch(threading.local):
    """A worker thread's index buffer for `np.bincount` (reused: no page faults)."""

    idx: NDArray[np.intp] | None = None


def _count(job: StreamJob, raw: NDArray[Any], scratch: _Scratch, lock: threading.Lock) -> None:
    assert job._hist is not None
    bits = np.ascontiguousarray(raw).reshape(-1).view(job._hist.bits)
    n_bins = job._hist.counts.size
    if scratch.idx is None:
        scratch.idx = np.empty(HIST_CHUNK, dtype=np.intp)
    counts: NDArray[np.intp] | None = None
    for lo in range(0, bits.size, HIST_CHUNK):
        part = bits[lo : lo + HIST_CHUNK]
        idx = scratch.idx[: part.size]
        np.copyto(idx, part, casting="unsafe")  # bincount would allocate this copy each time
        one = np.bincount(idx, minlength=n_bins)
        if counts is None:
            counts = one  # a fresh array: no zeroed one to add it to
        else:
            counts += one
    assert counts is not None  # a block has at least one element
    with lock:
        job._hist.counts += counts
        job._left -= 1
        last = job._left == 0
    if last:  # free the 65,536 counts now: a model of many tensors keeps none of them
        job._done, job._hist = job._hist.accumulator(), None


def _moments(job: StreamJob, raw: NDArray[Any]) -> StatsAccumulator:
    acc = StatsAccumulator()
    flat = raw.reshape(-1)
    for lo in range(0, flat.size, CHUNK):
        part = flat[lo : lo + CHUNK]
        acc.merge(chunk_stats(job.decode(part) if job.decode is not None else part))
    return acc


class _Prefetch:
    """Reads the mapped jobs' bytes into the page cache ahead of the workers, in large
    requests on its own thread: `sendfile` to /dev/null, so nothing is copied into this
    process. Without it a worker touching a cold page waits on a small read: the kernel
    caps MADV_WILLNEED / FADV_WILLNEED at the device's readahead size (~128 KB). A step
    already cached (`_cached`) is skipped: sending it would only cost a CPU the workers
    need. A hint only: on any error it stops and the workers' page faults read the rest."""

    def __init__(self, spans: list[tuple[int, int, int]]) -> None:
        self.spans = spans  # (fd, first byte, end) in the order the blocks are mapped
        self.used = 0  # bytes mapped so far, in that order
        self.cond = threading.Condition()
        self.stopped = False
        self.thread = threading.Thread(target=self._run, name="deepscope-prefetch", daemon=True)

    def start(self) -> _Prefetch:
        if self.spans and hasattr(os, "sendfile"):
            self.thread.start()
        return self

    def mapped(self, n: int) -> None:
        with self.cond:
            self.used += n
            self.cond.notify()

    def close(self) -> None:
        """Stop reading ahead and wait for the thread (before the descriptors close)."""
        with self.cond:
            self.stopped = True
            self.cond.notify()
        if self.thread.is_alive():
            self.thread.join()

    def _run(self) -> None:
        try:
            null = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            done = 0
            for fd, lo, hi in self.spans:
                off = lo
                while off < hi:
                    with self.cond:
                        while not self.stopped and done - self.used >= PREFETCH_BYTES:
                            self.cond.wait()
                        if self.stopped:
                            return
                    n = min(PREFETCH_STEP, hi - off)
                    sent = n if _cached(fd, off, n) else os.sendfile(null, fd, off, n)
                    if sent <= 0:
                        break
                    off += sent
                    done += sent
                done += hi - off  # a file shorter than its header says: _map reports it
        except OSError:
            return
        finally:
            os.close(null)


def _cached(fd: int, off: int, n: int) -> bool:
    """Whether bytes [off, off + n) of `fd` look cached: one byte of 4 pages spread over
    them, read with RWF_NOWAIT (which fails rather than wait for the disk). False where
    the system cannot tell."""
    flag = getattr(os, "RWF_NOWAIT", 0)
    if not flag:
        return False
    probe = bytearray(1)
    try:
        for at in (off, off + n // 3, off + 2 * n // 3, off + n - 1):
            if os.preadv(fd, [probe], at, flag) != 1:
                return False
    except OSError:  # EAGAIN: on the disk; EOPNOTSUPP: cannot tell
        return False
    return True


def _map(job: StreamJob, start: int, stop: int) -> tuple[mmap.mmap, int]:
    """Elements [start, stop) of `job` mapped read-only: the map and their byte offset in it."""
    size = job.stored.itemsize
    pos, end = job.offset + start * size, job.offset + stop * size
    base = pos - pos % MAP_ALIGN
    if os.fstat(job.fd).st_size < end:  # mapping past the end would be a SIGBUS, not an error
        raise ModelFormatError(
            f"the file ended while reading {job.key!r}; it changed or was truncated after it "
            "was opened"
        )
    m = mmap.mmap(job.fd, end - base, access=mmap.ACCESS_READ, offset=base)
    return m, pos - base


def _compute(job: StreamJob, raw: NDArray[Any], scratch: _Scratch, lock: threading.Lock) -> Any:
    if job._fmt is not None:
        return half_stats(raw, job._fmt)
    if job._hist is not None:
        _count(job, raw, scratch, lock)
        return None
    return _moments(job, raw)


def _plan(
    jobs: list[StreamJob], block_bytes: int | None, workers: int
) -> tuple[list[tuple[StreamJob, int, int]], set[int]]:
    """Each job's block size; the mapped jobs' blocks (job, start, stop) in file order, a
    mapped job's `_parts` their indices; and the id() of the jobs counted in a histogram
    (made when the job's first block starts: 512 KB each, only the ones in flight)."""
    mapped: list[tuple[StreamJob, int, int]] = []
    counted: set[int] = set()
    total = sum(j.size * j.stored.itemsize for j in jobs if j.fd >= 0)
    map_bytes = min(MAP_BYTES, max(MAP_ALIGN, total // (4 * workers)))
    for job in jobs:
        size = block_bytes or (map_bytes if job.fd >= 0 else BLOCK_BYTES)
        job._step = max(1, size // job.stored.itemsize)
        if job._fmt is None and job.size >= HIST_MIN and BitHistogram.supports(job.stored):
            counted.add(id(job))
            job._left = -(-job.size // job._step)
        if job.fd < 0:
            continue
        for start in range(0, job.size, job._step):
            if id(job) not in counted:
                job._parts.append(len(mapped))
            mapped.append((job, start, min(job.size, start + job._step)))
    return mapped, counted


def stream_accumulate(
    jobs: Iterable[StreamJob], *, workers: int | None = None, block_bytes: int | None = None
) -> dict[str, StatsAccumulator]:
    """The statistics of every job, read block by block in the order given (pass them
    in file order: one sequential read). Blocks are `block_bytes` (default: `MAP_BYTES`
    mapped, `BLOCK_BYTES` fetched). Errors of `fetch` propagate; a mapped file that is
    shorter than its tensors is a `ModelFormatError`."""
    jobs = list(jobs)
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    free: queue.SimpleQueue[bytearray | None] = queue.SimpleQueue()
    for _ in range(n_workers + 2):  # slots: a read buffer is made when a fetch needs one
        free.put(None)
    scratch, lock = _Scratch(), threading.Lock()
    spans = [(j.fd, j.offset, j.offset + j.size * j.stored.itemsize) for j in jobs if j.fd >= 0]
    prefetch = _Prefetch(spans).start()
    try:
        if any(j.dtype in HALF for j in jobs):
            warm()  # the kernel's library loads here, not in the first worker
        for job in jobs:
            job._fmt = half_format(job.dtype, job.stored)
        mapped, counted = _plan(jobs, block_bytes, n_workers)
    except BaseException:
        prefetch.close()
        raise

    def work(job: StreamJob, src: Any, slot: bytearray | None) -> Any:
        try:
            return _compute(job, src, scratch, lock)
        finally:
            free.put(slot)

    # Mapped blocks: each worker takes the next one (file order), maps, counts and unmaps
    # it itself: no hand-off between threads, no future per block, one map per worker.
    done: list[Any] = [None] * len(mapped)
    claim, stop_all = iter(range(len(mapped))), threading.Event()

    def pull() -> None:
        while not stop_all.is_set():
            with lock:
                i = next(claim, None)
                if i is None:
                    return
                job, start, stop = mapped[i]
                if start == 0 and id(job) in counted:  # blocks are claimed in order
                    job._hist = BitHistogram(job.stored, job.decode)
            m, off = _map(job, start, stop)
            prefetch.mapped((stop - start) * job.stored.itemsize)
            raw = np.frombuffer(m, dtype=job.stored, count=stop - start, offset=off)
            try:
                done[i] = _compute(job, raw, scratch, lock)
            finally:
                del raw
                with contextlib.suppress(BufferError):  # a view still held: unmapped on GC
                    m.close()

    pending: list[Future[Any]] = []
    with ThreadPoolExecutor(n_workers) as pool, contextlib.closing(prefetch):
        try:
            if mapped:
                pending += [pool.submit(pull) for _ in range(min(n_workers, len(mapped)))]
            for job in (j for j in jobs if j.fd < 0):
                for start in range(0, job.size, job._step):
                    stop = min(job.size, start + job._step)
                    slot = free.get()
                    if start == 0 and id(job) in counted:
                        job._hist = BitHistogram(job.stored, job.decode)
                    try:
                        if slot is None:
                            slot = bytearray(block_bytes or BLOCK_BYTES)
                        out = np.frombuffer(slot, dtype=job.stored, count=stop - start)
                        src = job.fetch(start, stop, out)
                    except BaseException:
                        free.put(slot)
                        raise
                    fut = pool.submit(work, job, src, slot)
                    del src
                    pending.append(fut)
                    if id(job) not in counted:
                        job._parts.append(fut)
            for fut in pending:
                fut.result()  # re-raise a worker's error
        except BaseException:
            stop_all.set()
            for fut in pending:  # stop the blocks not started
                fut.cancel()
            raise
    result: dict[str, StatsAccumulator] = {}
    for job in jobs:
        if job._done is not None:
            result[job.key] = job._done
        else:
            acc = StatsAccumulator()
            for part in job._parts:
                r = done[part] if isinstance(part, int) else part.result()
                if r is not None:
                    acc.merge(r)
            result[job.key] = acc
        job._hist, job._done, job._parts, job._fmt = None, None, [], None
    return result
