"""Statistics of a model file in one sequential pass (issue 15, "≤ one read of the file"):
the bit-pattern histogram and the block pipeline give numpy's figures exactly, across
block boundaries, NaN/Inf/zeros, every small dtype, and a file that shrinks mid-read."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from weights_reference import numpy_stats

import deepscope
from deepscope.analysis.weights._stream import HIST_MIN, StreamJob, stream_accumulate
from deepscope.analysis.weights.lazy import open_tensors
from deepscope.analysis.weights.stats import BitHistogram, tensor_stats
from deepscope.errors import ModelFormatError


def write_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> Path:
    header: dict[str, Any] = {}
    pos = 0
    for name, (code, shape, data) in tensors.items():
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [pos, pos + len(data)]}
        pos += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(
        struct.pack("<Q", len(raw)) + raw + b"".join(d for _, _, d in tensors.values())
    )
    return path


def _check(got: dict[str, Any], want: dict[str, Any]) -> None:
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k


def _special(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(-1)
    flat[[0, 17, len(flat) - 1]] = [np.nan, np.inf, -np.inf]
    flat[100:130] = 0.0
    flat[131] = -0.0
    return a


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    return (torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16).view(torch.int16)).numpy()


def test_histogram_path_equals_numpy_for_small_dtypes() -> None:
    rng = np.random.default_rng(0)
    f16 = _special(rng.standard_normal(5000).astype(np.float16) * 300)
    f16[200] = np.float16(6e-8)  # a subnormal
    _check(tensor_stats(f16), numpy_stats(f16))
    i8 = rng.integers(-128, 128, 4000).astype(np.int8)
    _check(tensor_stats(i8), numpy_stats(i8))
    u16 = rng.integers(0, 65536, 3000).astype(np.uint16)
    _check(tensor_stats(u16), numpy_stats(u16))
    # mean far from zero: Σx² - n·mean² would cancel; the table's Σ(x-mean)² does not
    off = (rng.standard_normal(4000) * 0.01 + 1000).astype(np.float16)
    got = tensor_stats(off)
    assert got["std"] == pytest.approx(np.asarray(off, np.float64).std(), rel=1e-9)
    h = BitHistogram(np.dtype(np.float16), None)
    h.add(f16[:2500])
    h.add(f16[2500:])
    assert h.counts.sum() == f16.size and h.accumulator().result()["nan"] == 1


def _jobs(store: Any, *, mapped: bool) -> list[StreamJob]:
    jobs = []
    for n in store.names():
        fd, offset = store.descriptor(n) or (-1, 0)
        jobs.append(
            StreamJob(
                n,
                int(np.prod(store.info(n).shape)),
                store.stored_dtype(n),
                lambda a, b, out, n=n: store.fetch(n, a, b, out),
                store.decoder(n),
                fd if mapped else -1,
                offset,
            )
        )
    return jobs


@pytest.mark.parametrize("mapped", [False, True], ids=["pread", "mmap"])
def test_file_stats_stream_across_blocks_equal_numpy(tmp_path: Path, mapped: bool) -> None:
    rng = np.random.default_rng(1)
    # f16 and bf16 above HIST_MIN (bit histogram), the others below it (float64 moments)
    f16 = _special(rng.standard_normal((300, 277)).astype(np.float16))
    f16[5, 5] = np.float16(6e-8)  # a subnormal
    f32 = _special((rng.standard_normal((123, 45)) * 7 + 3).astype(np.float32))
    bf = _special(rng.standard_normal(HIST_MIN + 4321).astype(np.float32) * 50)
    bf_bits = _bf16_bits(bf)
    i8 = rng.integers(-128, 128, 777).astype(np.int8)
    small16 = _special(rng.standard_normal(999).astype(np.float16) * 9)
    assert f16.size >= HIST_MIN and small16.size < HIST_MIN
    path = write_safetensors(
        tmp_path / "m.safetensors",
        {
            "a.weight": ("F16", f16.shape, f16.tobytes()),
            "b.weight": ("F32", f32.shape, f32.tobytes()),
            "c.weight": ("BF16", bf.shape, bf_bits.tobytes()),
            "d.weight": ("I8", i8.shape, i8.tobytes()),
            "e.weight": ("F16", (0, 4), b""),
            "f.weight": ("F16", small16.shape, small16.tobytes()),
        },
    )
    bf_exact = torch.from_numpy(bf_bits).view(torch.bfloat16).float().numpy()
    want = {"a.weight": f16, "b.weight": f32, "c.weight": bf_exact, "d.weight": i8}
    want["f.weight"] = small16
    with open_tensors(path) as store:
        jobs = _jobs(store, mapped=mapped)
        assert all((j.fd >= 0) == mapped for j in jobs if j.size)
        # many blocks per tensor, block edges not on page or element-pair boundaries
        got = stream_accumulate(jobs, workers=3, block_bytes=1000 + 6)
    for name, values in want.items():
        _check(got[name].result(), numpy_stats(values))
    assert got["e.weight"].result()["count"] == 0
    w = deepscope.weights(path)  # the same through the public API, one streamed pass
    rows = w.stats()
    for name, values in want.items():
        _check(rows[name], numpy_stats(values))
    all_values = np.concatenate([np.asarray(v, np.float64).ravel() for v in want.values()])
    _check(w.total(), numpy_stats(all_values))


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_mapped_blocks_are_unmapped_and_a_short_file_is_an_error(tmp_path: Path) -> None:
    x = np.arange(HIST_MIN * 3, dtype=np.float16)
    path = write_safetensors(tmp_path / "u.safetensors", {"w": ("F16", x.shape, x.tobytes())})
    with open_tensors(path) as store:
        jobs = _jobs(store, mapped=True)
        before = _maps_of(path)
        got = stream_accumulate(jobs, workers=2, block_bytes=4096)
        assert _maps_of(path) == before  # every block's map is gone again
        _check(got["w"].result(), numpy_stats(x))
        os.truncate(path, os.path.getsize(path) - 2)  # the last element is missing now
        with pytest.raises(ModelFormatError, match="truncated"):
            stream_accumulate(_jobs(store, mapped=True), workers=2, block_bytes=4096)


def _maps_of(path: Path) -> int:
    with open("/proc/self/maps") as f:
        return sum(str(path) in line for line in f)


def test_a_file_truncated_after_open_is_a_clear_error(tmp_path: Path) -> None:
    x = np.ones(50_000, dtype=np.float16)
    path = write_safetensors(tmp_path / "t.safetensors", {"w": ("F16", x.shape, x.tobytes())})
    w = deepscope.weights(path)
    os.truncate(path, 1000)
    with pytest.raises(ModelFormatError, match="truncated"):
        w.stats()


@pytest.mark.parametrize("mapped", [False, True])
def test_a_model_of_many_tensors_keeps_only_the_histograms_in_flight(
    tmp_path: Path, mapped: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each 65,536-bin histogram (512 KB) is turned into figures once its last block is
    counted: memory stays bounded by the blocks in flight, not by the tensor count."""
    rng = np.random.default_rng(2)
    tensors = {
        f"l{i}.weight": rng.standard_normal(HIST_MIN + i).astype(np.float16) for i in range(40)
    }
    path = write_safetensors(
        tmp_path / "many.safetensors",
        {n: ("F16", x.shape, x.tobytes()) for n, x in tensors.items()},
    )
    from deepscope.analysis.weights import _stream

    with open_tensors(path) as store:
        jobs = _jobs(store, mapped=mapped)
        live: list[int] = []
        compute = _stream._compute

        def counting(*args: Any) -> Any:  # the real computation, with a count beside it
            live.append(sum(j._hist is not None for j in jobs))
            return compute(*args)

        monkeypatch.setattr(_stream, "_compute", counting)
        got = stream_accumulate(jobs, workers=2, block_bytes=HIST_MIN)  # 2+ blocks each
    assert len(live) >= 80 and max(live) >= 1  # every block counted, through histograms
    assert max(live) <= 2 + 2 + 1  # blocks in flight (workers + 2) and the one being read
    for n, x in tensors.items():
        _check(got[n].result(), numpy_stats(x))


@pytest.mark.skipif(not hasattr(os, "RWF_NOWAIT"), reason="RWF_NOWAIT: Linux only")
def test_the_prefetcher_reads_only_what_is_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`_cached` (RWF_NOWAIT probes) tells a file's cached bytes from those on the disk, so
    the prefetcher reads a cold file and spends no CPU re-sending a warm one; a cold file
    through the whole pipeline comes out right."""
    from deepscope.analysis.weights import _stream

    sent: list[int] = []
    sendfile = os.sendfile

    def counted(out: int, src: int, offset: int, count: int) -> int:
        n = sendfile(out, src, offset, count)
        sent.append(n)
        return n

    monkeypatch.setattr(os, "sendfile", counted)
    data = np.random.default_rng(4).standard_normal(3 << 20).astype(np.float16)
    path = write_safetensors(tmp_path / "w.safetensors", {"w": ("F16", data.shape, data.tobytes())})
    fd = os.open(path, os.O_RDONLY)
    try:
        size = path.stat().st_size
        os.fsync(fd)  # dirty pages cannot be dropped
        os.pread(fd, size, 0)  # all of it cached
        if not _stream._cached(fd, 0, size):
            pytest.skip("RWF_NOWAIT cannot tell cached pages here")
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if _stream._cached(fd, 0, size):
            pytest.skip("this file system keeps the pages (DONTNEED had no effect)")
        _stream._Prefetch([(fd, 0, size)]).start().thread.join(30)
        assert sum(sent) == size  # cold: all of it sent through the page cache
        assert _stream._cached(fd, 0, size)
        sent.clear()
        _stream._Prefetch([(fd, 0, size)]).start().thread.join(30)
        assert sent == []  # warm: nothing sent again
        assert not _stream._cached(fd, size + (1 << 20), 4096)  # past the end: no
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # the whole pipeline, cold
        got = deepscope.weights(path).stats()["w"]
        assert got["mean"] == pytest.approx(float(data.astype(np.float64).mean()), abs=1e-12)
        assert got["std"] == pytest.approx(float(data.astype(np.float64).std()), rel=1e-9)
    finally:
        os.close(fd)
