"""Statistics of many stored tensors in one sequential pass over their file(s).

`stream_accumulate(jobs)` reads each job's stored bits in blocks of `BLOCK_BYTES` into a
small pool of reused buffers (`fetch(start, stop, out)`: `pread`, so no pages stay
mapped) on the calling thread, while `workers` threads compute on the blocks already
read: the disk and the CPUs work at the same time, and memory stays at
(workers + 2) blocks plus each thread's scratch. Jobs of 1- and 2-byte dtypes are
counted in a `BitHistogram` (one `np.bincount` pass per sub-chunk, exact); wider dtypes
go through `chunk_stats` and are merged in block order (deterministic).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.analysis.weights.stats import (
    CHUNK,
    HIST_CHUNK,
    BitHistogram,
    StatsAccumulator,
    chunk_stats,
)

__all__ = ["BLOCK_BYTES", "StreamJob", "stream_accumulate"]

#: Bytes read per `pread`: large enough for the disk, small enough to bound memory.
BLOCK_BYTES = 4 << 20

Fetch = Callable[[int, int, NDArray[Any]], NDArray[Any]]


@dataclass
class StreamJob:
    """One tensor: `fetch(start, stop, out)` returns its flattened stored elements
    [start, stop) (read into `out` where it can), `size` elements of dtype `stored`,
    `decode` turning stored bits into numbers (bf16 / float8), or None."""

    key: str
    size: int
    stored: np.dtype[Any]
    fetch: Fetch
    decode: Callable[[NDArray[Any]], NDArray[Any]] | None = None
    _hist: BitHistogram | None = field(default=None, repr=False)
    _parts: list[Future[StatsAccumulator | None]] = field(default_factory=list, repr=False)


class _Scratch(threading.local):
    """A worker thread's index buffer for `np.bincount` (reused: no page faults)."""

    idx: NDArray[np.intp] | None = None


def _count(job: StreamJob, raw: NDArray[Any], scratch: _Scratch, lock: threading.Lock) -> None:
    assert job._hist is not None
    bits = np.ascontiguousarray(raw).reshape(-1).view(job._hist.bits)
    counts = np.zeros_like(job._hist.counts)
    n_bins = counts.size
    if scratch.idx is None:
        scratch.idx = np.empty(HIST_CHUNK, dtype=np.intp)
    for lo in range(0, bits.size, HIST_CHUNK):
        part = bits[lo : lo + HIST_CHUNK]
        idx = scratch.idx[: part.size]
        np.copyto(idx, part, casting="unsafe")  # bincount would allocate this copy each time
        counts += np.bincount(idx, minlength=n_bins)
    with lock:
        job._hist.counts += counts


def _moments(job: StreamJob, raw: NDArray[Any]) -> StatsAccumulator:
    acc = StatsAccumulator()
    flat = raw.reshape(-1)
    for lo in range(0, flat.size, CHUNK):
        part = flat[lo : lo + CHUNK]
        acc.merge(chunk_stats(job.decode(part) if job.decode is not None else part))
    return acc


def stream_accumulate(
    jobs: Iterable[StreamJob], *, workers: int | None = None, block_bytes: int = BLOCK_BYTES
) -> dict[str, StatsAccumulator]:
    """The statistics of every job, read block by block in the order given (pass them
    in file order: one sequential read). Errors of `fetch` propagate."""
    jobs = list(jobs)
    n_workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    for _ in range(n_workers + 2):
        free.put(bytearray(block_bytes))
    scratch, lock = _Scratch(), threading.Lock()

    def work(job: StreamJob, raw: NDArray[Any], buf: bytearray) -> StatsAccumulator | None:
        try:
            if job._hist is not None:
                _count(job, raw, scratch, lock)
                return None
            return _moments(job, raw)
        finally:
            free.put(buf)

    pending: list[Future[Any]] = []
    with ThreadPoolExecutor(n_workers) as pool:
        try:
            for job in jobs:
                if BitHistogram.supports(job.stored):
                    job._hist = BitHistogram(job.stored, job.decode)
                step = max(1, block_bytes // job.stored.itemsize)
                for start in range(0, job.size, step):
                    stop = min(job.size, start + step)
                    buf = free.get()
                    try:
                        out = np.frombuffer(buf, dtype=job.stored, count=stop - start)
                        raw = job.fetch(start, stop, out)
                    except BaseException:
                        free.put(buf)
                        raise
                    fut = pool.submit(work, job, raw, buf)
                    pending.append(fut)
                    if job._hist is None:
                        job._parts.append(fut)
        except BaseException:
            for fut in pending:  # stop the blocks not started
                fut.cancel()
            raise
        for fut in pending:
            fut.result()  # re-raise a worker's error
    result: dict[str, StatsAccumulator] = {}
    for job in jobs:
        if job._hist is not None:
            result[job.key] = job._hist.accumulator()
        else:
            acc = StatsAccumulator()
            for part in job._parts:
                r = part.result()
                if r is not None:
                    acc.merge(r)
            result[job.key] = acc
        job._hist, job._parts = None, []
    return result
