"""Sandbox tasks that read Keras HDF5 weights with h5py, refusing reads outside the file (M10).

These run only in the sandbox child (`_sandbox.TASKS`), on the file descriptor the parent
opened; they never open a path (and the child is confined so that it cannot). The walk looks at every link before
following it and refuses external links and soft links; every dataset is checked before a
byte is read, refusing external raw storage (`external=[("/any/file", ...)]`) and virtual
datasets, whose data would come from other files.

Example:
    >>> worker_h5_legacy("", {"fd": 3})   # doctest: +SKIP
    {'config': '{"class_name": ...}', 'datasets': [...]}
"""

from __future__ import annotations

import io
import os
from typing import Any

from deepscope.errors import ModelFormatError, UnsafeModelError

MAX_DATASETS = 100_000
MAX_GROUP_DEPTH = 64
#: Datasets up to this many elements get statistics (larger ones: names and shapes only).
STATS_NUMEL = 1 << 24
#: Most bytes (decompressed, in memory) read for statistics per file (M11): ResNet50's
#: ~100 MB of float32 all get statistics; past the budget, datasets are listed with shape
#: and dtype and `"statsSkipped": "budget"`. 256 MB bounds the time (~0.6 s per 64 MB gzip
#: dataset here) and memory, however many compressed datasets a file holds.
STATS_BUDGET = 256 << 20


class _Window(io.RawIOBase):
    """A read-only view of bytes [start, start + size) of an open file (a stored zip member)."""

    def __init__(self, fd: int, start: int, size: int) -> None:
        self._fd, self._start, self._size, self._pos = fd, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf: Any) -> int:
        view = memoryview(buf).cast("B")
        n = max(0, min(len(view), self._size - self._pos))
        if n == 0:
            return 0
        got = os.preadv(self._fd, [view[:n]], self._start + self._pos)
        self._pos += got
        return got


def _refuse_outside(name: str, ds: Any) -> None:
    if ds.is_virtual:
        raise UnsafeModelError(
            f"HDF5 dataset {name!r} is a virtual dataset whose data lives in other files; "
            "refusing to read it (model weights never need this)"
        )
    if ds.external:
        raise UnsafeModelError(
            f"HDF5 dataset {name!r} stores its data in external file(s); refusing to read "
            "files outside the model (model weights never need this)"
        )


class _Budget:
    """Bytes left to read for statistics in one file."""

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self, nbytes: int) -> bool:
        if nbytes > self.left:
            return False
        self.left -= nbytes
        return True


def _walk(
    group: Any,
    prefix: str,
    out: list[dict[str, Any]],
    depth: int,
    seen: set[Any],
    budget: _Budget,
) -> None:
    import h5py

    from deepscope.sources._weights import tensor_stats

    if depth > MAX_GROUP_DEPTH:
        raise ModelFormatError(f"HDF5 groups nest deeper than {MAX_GROUP_DEPTH} levels")
    for key in group:
        name = f"{prefix}{key}"
        link = group.get(key, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise UnsafeModelError(
                f"HDF5 entry {name!r} is an external link to {link.filename!r}; refusing to "
                "follow links out of the model file"
            )
        if not isinstance(link, h5py.HardLink):
            raise ModelFormatError(
                f"HDF5 entry {name!r} is a soft or user-defined link; Keras never writes those"
            )
        obj = group[key]
        if obj.id in seen:
            continue  # a second hard link to an object already read (or a cycle)
        seen.add(obj.id)
        if isinstance(obj, h5py.Group):
            _walk(obj, f"{name}/", out, depth + 1, seen, budget)
        elif isinstance(obj, h5py.Dataset):
            _refuse_outside(name, obj)
            if len(out) >= MAX_DATASETS:
                raise ModelFormatError(f"the HDF5 file holds more than {MAX_DATASETS} datasets")
            item: dict[str, Any] = {"name": name, "shape": list(obj.shape), "dtype": str(obj.dtype)}
            if obj.dtype.kind in "fiub" and obj.size <= STATS_NUMEL:
                if budget.take(int(obj.size) * obj.dtype.itemsize):
                    item["stats"] = tensor_stats(obj[()])
                else:
                    item["statsSkipped"] = "budget"
            out.append(item)


def datasets(group: Any, stats_budget: int = STATS_BUDGET) -> list[dict[str, Any]]:
    """Name, shape, dtype (and statistics) of every dataset under `group`, links refused.

    Statistics are read until `stats_budget` bytes have been; later datasets that do not
    fit get `"statsSkipped": "budget"` instead.
    """
    out: list[dict[str, Any]] = []
    _walk(group, "", out, 0, set(), _Budget(stats_budget))
    return out


def warm_up() -> None:
    """Import everything the tasks use, before the child is forbidden to open files.

    Runs the readers once on a small in-memory file like the ones keras writes (string
    attributes in ASCII and UTF-8, float, int and bool datasets, a zip member), so lazily
    imported modules (codecs, numpy internals) are loaded while imports still work.
    """
    import base64  # noqa: F401 - h5_values encodes with it after the child is confined
    import importlib
    import zipfile

    import h5py
    import numpy as np

    for codec in ("ascii", "latin_1", "utf_8", "utf_16", "cp437"):
        importlib.import_module(f"encodings.{codec}")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.attrs["model_config"] = '{"class_name": "Sequential"}'
        h5.attrs["keras_version"] = b"3"
        h5.attrs["names"] = np.array([b"a/kernel", b"a/bias"])
        group = h5.create_group("model_weights/a")
        group.attrs["weight_names"] = ["a/kernel \u00e9"]
        for dtype in ("float32", "float16", "float64", "int64", "int32", "uint8", "bool"):
            group.create_dataset(dtype, data=np.ones((2, 3), dtype))
    with h5py.File(io.BytesIO(buf.getvalue()), "r") as h5:
        _ = [h5.attrs[k] for k in h5.attrs] + [h5["model_weights/a"].attrs["weight_names"]]
        datasets(h5)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("m.h5", buf.getvalue())
    from deepscope.sources._archive import member_window, open_zip

    with open_zip(io.BytesIO(zipped.getvalue()), name="warm-up") as sz:
        member_window(sz, "m.h5")
        sz.read("m.h5")


def _open(fileobj: Any) -> Any:
    import h5py

    try:
        return h5py.File(fileobj, "r")
    except OSError as e:
        raise ModelFormatError(f"not a readable HDF5 file ({str(e)[:200]})") from None


def _budget(options: dict[str, Any]) -> int:
    return max(0, int(options.get("stats_budget", STATS_BUDGET)))


def worker_h5_weights(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Sandbox task: the datasets of the weights member of a `.keras` zip open as `fd`."""
    from deepscope.sources._archive import member_window, open_zip

    fd = int(options["fd"])
    with os.fdopen(os.dup(fd), "rb") as f, open_zip(f, name=str(options.get("name", "model"))) as z:
        window = member_window(z, str(options["member"]))
        fileobj: Any = (
            _Window(fd, *window)
            if window is not None
            else io.BytesIO(z.read(str(options["member"])))
        )
    with _open(fileobj) as h5:
        return {"datasets": datasets(h5, _budget(options))}


def worker_h5_legacy(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Sandbox task: the `model_config` attribute as text, plus the weight datasets."""
    import h5py

    fd = int(options["fd"])
    size = os.fstat(fd).st_size
    with _open(_Window(fd, 0, size)) as h5:
        raw = h5.attrs.get("model_config")
        cap = int(options.get("config_cap", 1 << 24))
        if isinstance(raw, (bytes, str)) and len(raw) > cap:
            raise ModelFormatError(
                f"the model_config attribute is over the {cap:,}-byte cap; "
                "real configs are kilobytes to a few MB"
            )
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        config = raw if isinstance(raw, str) else None
        if "model_weights" in h5:
            link = h5.get("model_weights", getlink=True)
            if not isinstance(link, h5py.HardLink) or not isinstance(
                h5["model_weights"], h5py.Group
            ):
                raise UnsafeModelError("HDF5 'model_weights' is a link or not a group; refusing it")
            found = datasets(h5["model_weights"], _budget(options))
            return {"config": config, "datasets": found}
        return {"config": config, "datasets": datasets(h5, _budget(options))}


#: Most raw bytes of values one `h5_values` answer carries (base64 in JSON: 4/3 of this,
#: under the sandbox's 64 MB answer cap).
VALUES_BUDGET = 40 << 20
_VALUE_KINDS = "fiub"


def _dataset(root: Any, name: str) -> Any:
    """The dataset `name` under `root`, every link on the way checked (hard links only)."""
    import h5py

    node = root
    parts = [p for p in name.split("/") if p]
    if not parts or len(parts) > MAX_GROUP_DEPTH:
        raise ModelFormatError(f"no weight named {name!r} in the file")
    for part in parts:
        if not isinstance(node, h5py.Group) or part not in node:
            raise ModelFormatError(f"no weight named {name!r} in the file")
        link = node.get(part, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise UnsafeModelError(f"HDF5 entry {name!r} is reached through a link; refusing it")
        node = node[part]
    if not isinstance(node, h5py.Dataset):
        raise ModelFormatError(f"{name!r} is not a weight tensor (an HDF5 group)")
    _refuse_outside(name, node)
    return node


def _values(root: Any, names: list[str], budget: int) -> dict[str, Any]:
    import base64

    import numpy as np

    out: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in names:
        ds = _dataset(root, str(name))
        nbytes = int(ds.size) * ds.dtype.itemsize
        if ds.dtype.kind not in _VALUE_KINDS or nbytes > budget:
            skipped.append(name)
            continue
        budget -= nbytes
        arr = np.ascontiguousarray(ds[()])
        out.append({
            "name": name,
            "shape": list(arr.shape),
            "dtype": arr.dtype.str,
            "data": base64.b64encode(arr.tobytes()).decode("ascii"),
        })  # fmt: skip
    return {"values": out, "skipped": skipped}


def worker_h5_values(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Sandbox task: the values of the datasets `names` (base64 of their bytes), up to
    `max_bytes` in all; names past the budget or not numeric come back in `skipped`. With
    `member`: the weights member of a `.keras` zip open as `fd`; without: a legacy `.h5`
    file, names relative to its `model_weights` group when it has one."""
    from deepscope.sources._archive import member_window, open_zip

    fd = int(options["fd"])
    names = [str(n) for n in options.get("names", [])][:MAX_DATASETS]
    budget = min(VALUES_BUDGET, max(0, int(options.get("max_bytes", VALUES_BUDGET))))
    member = options.get("member")
    if member is not None:
        with os.fdopen(os.dup(fd), "rb") as f, open_zip(f, name="model") as z:
            window = member_window(z, str(member))
            fileobj: Any = (
                _Window(fd, *window) if window is not None else io.BytesIO(z.read(str(member)))
            )
    else:
        fileobj = _Window(fd, 0, os.fstat(fd).st_size)
    with _open(fileobj) as h5:
        root = h5["model_weights"] if member is None and "model_weights" in h5 else h5
        return _values(root, names, budget)
