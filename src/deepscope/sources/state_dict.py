"""PyTorch checkpoints (`.pt`, `.pth`, `.bin`, `.ckpt`) holding tensors: weights only (M1, M2).

Loaded with `torch.load(weights_only=True)` after a torch version check. A checkpoint that
needs any other global raises `UnsafeModelError` naming it; with `trust=True` it is loaded by
`_trusted.trusted_load` in a sandbox worker, which sends back names, shapes and statistics.

Example:
    >>> model = load(Path("resnet.pt"))                    # doctest: +SKIP
    >>> sum(w.values.size for w in model.weights.values() if w.values is not None)
"""

from __future__ import annotations

import io
import pickle
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import ModelFormatError, UnsafeModelError
from deepscope.sources import _limits
from deepscope.sources._archive import is_zip, open_zip
from deepscope.sources._weights import StatsAccumulator, graph_from_tensors
from deepscope.sources.base import Model, WeightInfo

__all__ = [
    "check_pickles",
    "iter_tensors",
    "load",
    "match",
    "safe_torch_load",
    "select_weights",
    "tensor_summary",
]

SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights", "params")
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def match(target: object) -> bool:
    """A `.pt`/`.pth`/`.bin`/`.ckpt` path that is not a TorchScript or .pt2 archive."""
    if not isinstance(target, (str, Path)) or not str(target).lower().endswith(SUFFIXES):
        return False
    from deepscope.sources.torchscript_file import is_code_archive

    return not is_code_archive(Path(str(target)))


def safe_torch_load(path: Path) -> Any:
    """`torch.load(weights_only=True)` after the torch version check (M1, M2): a zip
    checkpoint is memory-mapped (storages are read when a tensor is used), a checkpoint that
    needs any other global is an `UnsafeModelError` naming it, bad bytes a
    `ModelFormatError`. Call `check_pickles` first (names and pickle-bomb scan)."""
    import torch

    _limits.check_torch_version()
    mmap = is_zip(path)
    try:
        return torch.load(str(path), weights_only=True, map_location="cpu", mmap=mmap)
    except pickle.UnpicklingError as e:
        found = _GLOBAL.search(str(e))
        if found:
            raise UnsafeModelError(
                f"{path.name} needs the Python global {found.group(1)!r} to load, which could "
                "run code. If you trust the file, pass trust=True (--trust-model), or allow that "
                "one class with torch.serialization.add_safe_globals([...])"
            ) from None
        raise UnsafeModelError(
            f"{path.name} is not a plain weights file ({_first_line(e)}); pass trust=True "
            "(--trust-model) only if you trust it"
        ) from None
    except Exception as e:  # the unpickler and storage readers raise anything on bad bytes
        raise ModelFormatError(
            f"{path.name} is not a readable PyTorch checkpoint ({_first_line(e)})"
        ) from None


def check_pickles(path: Path) -> None:
    """Member-name checks (M6) and the pickle-bomb scan (M11), to run before torch reads
    the file; a pre-2018 tar checkpoint is a `ModelFormatError`."""
    from deepscope.sources._pickle_scan import PickleBombError, check_pickle

    try:
        if is_zip(path):
            with open_zip(path) as z:
                for member in z.names:
                    if member.endswith(".pkl"):
                        check_pickle(io.BytesIO(z.read(member)))
            return
        if tarfile.is_tarfile(path):
            raise ModelFormatError(
                f"{path.name} is a pre-2018 tar-format checkpoint, which deepscope does not "
                "read; load it with torch where you trust it and save it again"
            )
        with open(path, "rb") as f:
            # legacy format: magic number, protocol, sys info, the object, storage keys
            for i in range(5):
                check_pickle(f, items_hashed=i == 4)
    except (PickleBombError, ModelFormatError):
        raise
    except Exception as e:  # pickletools' ValueError and friends: not a pickle
        raise ModelFormatError(
            f"{path.name} is not a readable PyTorch checkpoint ({_first_line(e)})"
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    for line in text.splitlines():
        if "GLOBAL" in line or "Unsupported" in line:
            return line.strip()[:300]
    return (text.splitlines() or [type(e).__name__])[0][:300]


#: Most container items one checkpoint walk visits (each container is expanded once).
WALK_BUDGET = 1_000_000
#: Deepest container nesting accepted (real checkpoints nest a handful of levels).
MAX_NESTING = 64


def iter_tensors(obj: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every tensor in nested containers, with dotted names, each container walked once (M11).

    dicts (OrderedDict, Counter, ...), lists, tuples, sets and frozensets are followed.
    A container reached again through another path (shared references, a DAG) is not
    walked again, so its tensors are named once, by the first path; a tensor listed under
    two keys of one container (tied weights) keeps both names. Raises `ModelFormatError`
    past `WALK_BUDGET` items or `MAX_NESTING` levels.
    """
    import torch

    seen: set[int] = set()
    visited = 0
    stack: list[tuple[str, Any, int]] = [(prefix, obj, 0)]
    while stack:
        name, value, depth = stack.pop()
        if isinstance(value, torch.Tensor):
            yield name, value
            continue
        children = _children(value)
        if children is None or id(value) in seen:
            continue
        if depth >= MAX_NESTING:
            raise ModelFormatError(
                f"checkpoint containers nest deeper than {MAX_NESTING} levels at {name[:200]!r}"
            )
        seen.add(id(value))
        found: list[tuple[str, Any, int]] = []
        for key, child in children:
            visited += 1
            if visited > WALK_BUDGET:
                raise ModelFormatError(
                    f"checkpoint holds more than {WALK_BUDGET:,} container items; "
                    "it is not a weights file deepscope can list"
                )
            if isinstance(child, torch.Tensor) or _children(child) is not None:
                found.append((f"{name}.{key}" if name else str(key), child, depth + 1))
        stack.extend(reversed(found))


def _children(value: Any) -> Iterator[tuple[Any, Any]] | None:
    """(key, child) pairs of a container, or None for anything else."""
    if isinstance(value, dict):
        return iter(value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return enumerate(value)
    return None


def select_weights(obj: Any) -> tuple[Any, list[str]]:
    """Pick the model weights out of a training checkpoint (the first of `WRAPPER_KEYS`
    holding tensors, else `obj` itself); notes name what was skipped."""
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, dict) and any(True for _ in iter_tensors(inner)):
                others = [str(k) for k in obj if k != key]
                notes = [f"weights from the {key!r} entry"]
                if others:
                    notes.append("checkpoint also holds: " + ", ".join(others[:20]))
                return inner, notes
    return obj, []


def _dtype_name(t: Any) -> str:
    return str(t.dtype).removeprefix("torch.")


def tensor_summary(t: Any, chunk: int = 1 << 22) -> dict[str, Any]:
    """Chunked statistics of a torch tensor (any dtype)."""
    acc = StatsAccumulator()
    flat = t.detach().reshape(-1)
    if flat.is_complex():
        flat = flat.abs()
    for start in range(0, flat.numel(), chunk):
        acc.add(flat[start : start + chunk].double().numpy())
    return acc.result()


def _to_numpy(t: Any) -> np.ndarray:
    t = t.detach()
    if t.dtype.is_floating_point and t.element_size() < 4 and str(t.dtype) != "torch.float16":
        t = t.float()
    return np.array(t.numpy())


def load(
    target: object, *, trust: bool = False, stats: bool | None = None, **options: Any
) -> Model:
    """Read the tensors of a PyTorch checkpoint without executing code from it."""
    path = Path(str(target))
    from deepscope.sources.torchscript_file import is_code_archive

    if is_code_archive(path):
        raise UnsafeModelError(
            f"{path.name} is a TorchScript/.pt2 archive, which holds code; open it with the "
            "torchscript source (structure only) or pass trust=True"
        )
    check_pickles(path)
    try:
        obj = safe_torch_load(path)
    except UnsafeModelError:
        if not trust:
            raise
        return _trusted_model(path)
    selected, notes = select_weights(obj)
    tensors = list(iter_tensors(selected))
    total = sum(t.numel() * t.element_size() for _, t in tensors)
    do_stats = total <= 256 * _limits.MB if stats is None else stats
    graph = graph_from_tensors(
        ((n, tuple(t.shape), _dtype_name(t)) for n, t in tensors), "state_dict"
    )
    weights: dict[str, WeightInfo] = {}
    for node, (name, t) in zip(graph.nodes, tensors, strict=True):
        if do_stats:
            node.attrs["stats"] = tensor_summary(t)
        vals = _to_numpy(t) if t.numel() <= _limits.SMALL_TENSOR_NUMEL else None
        weights[name] = WeightInfo(name, tuple(t.shape), _dtype_name(t), vals)
    if not do_stats:
        notes.append("statistics not computed (large file): pass stats=True")
    return Model(graph=graph, weights=weights, format="state_dict", notes=notes)


def _trusted_model(path: Path) -> Model:
    from deepscope.sources._sandbox import run_task

    found = run_task("pickle_tensors", path)
    tensors = [(t["name"], tuple(t["shape"]), t["dtype"]) for t in found["tensors"]]
    graph = graph_from_tensors(tensors, "state_dict")
    for node, t in zip(graph.nodes, found["tensors"], strict=True):
        node.attrs["stats"] = t["stats"]
    weights = {n: WeightInfo(n, s, d) for n, s, d in tensors}
    notes = ["loaded with trust=True in a sandbox worker; values stay there (statistics only)"]
    return Model(graph=graph, weights=weights, format="state_dict", notes=notes)


def worker_trusted_tensors(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Sandbox task: unpickle with trust and describe the tensors found."""
    from deepscope.sources._trusted import trusted_load

    obj = trusted_load(Path(path), "pickle", trust=True)
    selected, _ = select_weights(obj)
    return {
        "tensors": [
            {"name": n, "shape": list(t.shape), "dtype": _dtype_name(t), "stats": tensor_summary(t)}
            for n, t in iter_tensors(selected)
        ]
    }
