"""Lazy, memory-mapped access to the tensors of a model file: `open_tensors(path)`.

Opening reads the structure only (the safetensors header, the ONNX protobuf's initializer
records, a checkpoint's pickle); a tensor's bytes are read when asked for, and only that
tensor's bytes. Safetensors and ONNX need numpy only (no torch, no onnx parse of the
weights), so a server can call this to serve one node's weights of a 10 GB file.

    >>> store = open_tensors("model.safetensors")         # doctest: +SKIP
    >>> store.names()[:2]                                  # doctest: +SKIP
    ['embed.weight', 'layers.0.attn.q.weight']
    >>> store.info("embed.weight")                         # doctest: +SKIP
    TensorInfo(name='embed.weight', shape=(50000, 4096), dtype='float16', nbytes=409600000,
               offset=1234, file='/models/model.safetensors')
    >>> w = store.read("embed.weight")  # a read-only np.memmap-like view; bf16 → float32 copy

- `names()`, `info(name)` (shape, display dtype, stored bytes, byte offset in `file`),
  `read(name)` (numbers numpy computes with: a zero-copy view on the memory map for
  numpy dtypes; bf16 / float8 decoded to float32), `raw(name)` (the stored bits, always a
  view where the format allows), `decoder(name)` (stored bits → numbers, per chunk) and
  `fetch(name, start, stop, out=)` (elements [start, stop) of the flattened stored bits,
  read with `pread` into a small or reused buffer: bounded memory and no pages left
  mapped, used by the chunked statistics). Close the store (or use `with`) to unmap.
- **safetensors**: header validated by `safetensors_file.read_header_from` (M9, every
  check of the eager loader), the file memory-mapped read-only.
- **ONNX**: initializer records located by `_onnx_wire` on a memory map of the .onnx
  (no `onnx.load`, so `raw_data` is never copied), each validated by `check_initializer`;
  `raw_data` is read in place; external data is validated by `onnx_file.check_external`
  (a relative path inside the model's folder, no `..`, no symbolic link, a regular file
  with one hard link, offset/length inside it: M7) and opened with `open_external`
  (O_NOFOLLOW, re-checked on the descriptor), then mapped. Values in typed protobuf
  fields (`float_data`, ...) are parsed from that one initializer's bytes. Sub-byte and
  other non-numpy types are decoded by onnx (a copy of that tensor).
- **.pt / .pth / .bin / .ckpt state dicts**: the pickle-bomb and member checks and the
  weights-only unpickler of `sources.state_dict` (M1, M2, M6, M11); zip checkpoints are
  memory-mapped by torch, so storages are read when a tensor is used. This one format
  imports torch. A checkpoint that needs a global is an `UnsafeModelError`.

Other formats (.keras, .h5, TorchScript) are a `ModelFormatError`: use
`deepscope.load_model` / `deepscope.weights`. A memory-mapped file that shrinks while
mapped makes reads of the missing part fail hard (SIGBUS), as with any mmap reader.
"""

from __future__ import annotations

import math
import mmap
import os
import stat
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from deepscope.errors import ModelFormatError, NotFoundError

__all__ = ["TensorInfo", "TensorStore", "open_tensors"]

Decoder = Callable[[NDArray[Any]], NDArray[Any]]


@dataclass(frozen=True)
class TensorInfo:
    """Metadata of one stored tensor. `offset` is the byte offset of its first byte in
    `file` (None where the bytes are not addressable: typed protobuf fields, torch
    storages); `nbytes` the bytes it occupies there."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    offset: int | None
    file: str | None


@dataclass
class _Entry:
    info: TensorInfo
    stored: np.dtype[Any] | None  # dtype of the stored bits (None: not mappable)
    decode: Decoder | None
    fd: int = -1  # descriptor holding the bytes (pread); -1: no direct file access
    buffer: Any = None  # the mmap holding the bytes
    provider: Callable[[], NDArray[Any]] | None = None  # values a library reads


def _bf16(raw: NDArray[Any]) -> NDArray[Any]:
    return (np.asarray(raw, dtype=np.uint32) << 16).view(np.float32)


def _st_decoder(code: str) -> Decoder | None:
    from deepscope.sources.safetensors_file import to_numeric

    if code in ("BF16", "F8_E5M2", "F8_E4M3", "F8_E8M0"):
        return lambda raw: np.asarray(to_numeric(np.asarray(raw), code))
    return None


def _close_fds(fds: list[int]) -> None:
    while fds:
        os.close(fds.pop())


class TensorStore:
    """The tensors of one model file, read on demand (see the module docstring)."""

    format = ""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.notes: list[str] = []
        self._entries: dict[str, _Entry] = {}
        self._fds: list[int] = []
        self._maps: list[mmap.mmap] = []
        self._keep: list[Any] = []  # objects whose memory the views use (torch storages)
        weakref.finalize(self, _close_fds, self._fds)  # a store never closed leaks no fd

    # metadata ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Tensor names in file order."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            near = ", ".join(list(self._entries)[:8])
            raise NotFoundError(
                f"no tensor named {name!r} in {self.path.name}; tensors include: {near}"
            ) from None

    def info(self, name: str) -> TensorInfo:
        """Shape, dtype, stored bytes and byte offset of `name` (nothing is read)."""
        return self._entry(name).info

    # values -----------------------------------------------------------------------------

    def raw(self, name: str) -> NDArray[Any]:
        """The stored bits of `name`, shaped: a read-only view on the memory map where the
        format allows (touching it reads those pages only)."""
        e = self._entry(name)
        shape = e.info.shape
        if e.provider is not None:
            return e.provider()
        assert e.stored is not None
        numel = math.prod(shape)
        if numel == 0 or e.buffer is None:
            return np.zeros(shape, dtype=e.stored)
        assert e.info.offset is not None
        view = np.frombuffer(e.buffer, dtype=e.stored, count=numel, offset=e.info.offset)
        return view.reshape(shape)

    def decoder(self, name: str) -> Decoder | None:
        """Stored bits → numbers for `name` (bf16 / float8 → float32), or None when the
        stored dtype is already one numpy computes with."""
        return self._entry(name).decode

    def read(self, name: str) -> NDArray[Any]:
        """`name` as numbers numpy computes with: a lazy view for numpy dtypes, a decoded
        float32 copy for bf16 / float8."""
        raw = self.raw(name)
        decode = self.decoder(name)
        return decode(raw) if decode is not None else raw

    def stored_dtype(self, name: str) -> np.dtype[Any]:
        """The numpy dtype of `name`'s stored bits (uint16 for bf16, uint8 for float8)."""
        e = self._entry(name)
        return e.stored if e.stored is not None else np.asarray(self.raw(name)).dtype

    def descriptor(self, name: str) -> tuple[int, int] | None:
        """(open descriptor, byte offset) of `name`'s stored bits, for a reader that maps
        them in windows itself (valid while the store is open), or None."""
        e = self._entry(name)
        if e.fd < 0 or e.stored is None or e.info.offset is None:
            return None
        return e.fd, e.info.offset

    def fetch(
        self, name: str, start: int, stop: int, out: NDArray[Any] | None = None
    ) -> NDArray[Any]:
        """Elements [start, stop) of the flattened stored bits, read into `out` (a buffer of
        at least stop - start elements of the stored dtype, reused by the caller) or a new
        buffer (`pread`: no pages stay mapped), or sliced from `raw` where there is no
        file."""
        e = self._entry(name)
        if e.fd < 0 or e.stored is None or e.info.offset is None:
            return np.asarray(self.raw(name)).reshape(-1)[start:stop]
        n = max(0, stop - start)
        if out is None:
            out = np.empty(n, dtype=e.stored)
        else:
            out = out.reshape(-1)[:n]
            if out.dtype != e.stored or len(out) < n or not out.flags.c_contiguous:
                raise ValueError(f"fetch(out=) needs {n} contiguous {e.stored} elements")
        view = memoryview(out.data).cast("B")
        pos = e.info.offset + start * e.stored.itemsize
        done = 0
        while done < len(view):
            n = os.preadv(e.fd, [view[done:]], pos + done)
            if n <= 0:
                raise ModelFormatError(
                    f"{self.path.name}: the file ended while reading {name!r}; it changed or "
                    "was truncated after it was opened"
                )
            done += n
        return out

    def chunks(self, name: str, chunk: int = 1 << 20) -> Iterator[NDArray[Any]]:
        """The flattened values of `name` as numbers, `chunk` elements at a time."""
        numel = math.prod(self.info(name).shape)
        decode = self.decoder(name)
        for start in range(0, numel, chunk):
            part = self.fetch(name, start, min(numel, start + chunk))
            yield decode(part) if decode is not None else part

    # lifetime ---------------------------------------------------------------------------

    def _open_fd(self, path: Path) -> int:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except OSError as e:
            raise ModelFormatError(f"cannot open {path.name}: {e.strerror}") from None
        self._fds.append(fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ModelFormatError(f"{path.name} is not a regular file")
        if hasattr(os, "posix_fadvise"):  # statistics read tensors front to back: more readahead
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        return fd

    def _map(self, fd: int) -> mmap.mmap | None:
        if os.fstat(fd).st_size == 0:
            return None
        m = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        self._maps.append(m)
        return m

    def close(self) -> None:
        """Unmap and close the files (views returned before must not be used after)."""
        for m in self._maps:
            try:
                m.close()
            except BufferError:  # a view is still alive: the map goes when it does
                pass
        _close_fds(self._fds)
        self._maps, self._keep = [], []
        for e in self._entries.values():
            e.fd, e.buffer = -1, None

    def __enter__(self) -> TensorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TensorStore {self.format} {self.path.name}: {len(self)} tensors>"


class SafetensorsStore(TensorStore):
    """A `.safetensors` file: validated header, data memory-mapped."""

    format = "safetensors"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        from deepscope.sources.safetensors_file import DTYPES, display_dtype, read_header_from

        try:
            fd = self._open_fd(self.path)
            size = os.fstat(fd).st_size
            with os.fdopen(os.dup(fd), "rb") as f:
                header = read_header_from(f, size, self.path.name)
            buffer = self._map(fd)
        except BaseException:
            self.close()
            raise
        for t in header.tensors.values():
            info = TensorInfo(
                t.name, t.shape, display_dtype(t.dtype), t.end - t.begin, t.begin, str(self.path)
            )
            stored = np.dtype(DTYPES[t.dtype][1])
            self._entries[t.name] = _Entry(info, stored, _st_decoder(t.dtype), fd, buffer)


def open_tensors(path: str | os.PathLike[str]) -> TensorStore:
    """The tensors of a `.safetensors`, `.onnx` or `.pt`/`.pth`/`.bin`/`.ckpt` file, read
    lazily (see the module docstring). Raises `NotFoundError`, `ModelFormatError` (a
    malformed file or another format) or `UnsafeModelError` (code or unsafe references)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError:
        raise NotFoundError(f"model file not found: {p}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFormatError(f"{p.name} is not a regular file")
    name = p.name.lower()
    if name.endswith(".safetensors"):
        return SafetensorsStore(p)
    if name.endswith(".onnx"):
        from deepscope.analysis.weights._lazy_onnx import OnnxStore

        return OnnxStore(p)
    from deepscope.sources import state_dict

    if name.endswith(state_dict.SUFFIXES):
        from deepscope.analysis.weights._lazy_torch import StateDictStore

        return StateDictStore(p)
    raise ModelFormatError(
        f"no lazy tensor reader for {p.name}: open .safetensors, .onnx or .pt/.pth/.bin/.ckpt "
        "files here, other formats with deepscope.load_model or deepscope.weights"
    )
