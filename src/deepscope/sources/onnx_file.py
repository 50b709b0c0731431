"""`.onnx` files: the protobuf is parsed, never executed (no onnxruntime).

External data (M7) is resolved by us before anything is opened: the `location` must be a
plain relative path inside the model's folder, with no symlink on the way, a regular file
with one hard link, offsets and lengths inside the file, and no unknown keys. Pass
`external_data=False` to view the structure without touching external files.

Example:
    >>> model = load(Path("resnet18.onnx"))                # doctest: +SKIP
    >>> model.graph.node("n0").namespace
    'conv1'
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deepscope.errors import ModelFormatError, UnsafeModelError, require
from deepscope.sources import _limits
from deepscope.sources.base import Model, WeightInfo

SUFFIXES = (".onnx",)
EXTERNAL_KEYS = {"location", "offset", "length", "checksum"}
_OPS = {
    "Conv": "conv",
    "Gemm": "linear",
    "MatMul": "matmul",
    "BatchNormalization": "batch_norm",
    "Relu": "relu",
    "Add": "add",
    "Mul": "mul",
    "Softmax": "softmax",
}


class ExternalDataError(UnsafeModelError):
    """An ONNX external-data record points outside the model folder or is otherwise unsafe."""


def match(target: object) -> bool:
    """A path ending in `.onnx`."""
    return isinstance(target, (str, Path)) and str(target).lower().endswith(SUFFIXES)


def normalise_op(op_type: str) -> str:
    """`"Conv"` → `"conv"`, `"GlobalAveragePool"` → `"global_average_pool"`."""
    if op_type in _OPS:
        return _OPS[op_type]
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", op_type).lower()


def namespace_from_name(name: str) -> str:
    """torch exporter names `"/layer1/layer1.0/conv1/Conv"` → `"layer1/0/conv1"`; others → ""."""
    if not name.startswith("/"):
        return ""
    parts = [p for p in name.split("/")[1:-1] if p]
    out: list[str] = []
    prev = ""
    for p in parts:
        local = p[len(prev) + 1 :] if prev and p.startswith(prev + ".") else p
        out.extend(x for x in local.split(".") if x)
        prev = p
    return "/".join(out)


@dataclass(frozen=True)
class ExternalRef:
    """A validated external-data record."""

    path: Path
    offset: int
    length: int | None


def check_external(model_dir: Path, entries: dict[str, str], tensor: str) -> ExternalRef:
    """Validate one tensor's external-data record without opening anything (M7)."""
    unknown = set(entries) - EXTERNAL_KEYS
    if unknown:
        raise ExternalDataError(f"tensor {tensor!r}: unknown external-data keys {sorted(unknown)}")
    loc = entries.get("location", "")
    bad = ""
    if not loc:
        bad = "is empty"
    elif "\x00" in loc or "\\" in loc:
        bad = "holds a NUL byte or backslash"
    elif loc.startswith("/") or re.match(r"^[A-Za-z]:", loc) or os.path.isabs(loc):
        bad = "is absolute"
    elif any(p == ".." for p in loc.split("/")):
        bad = "climbs out with '..'"
    if bad:
        raise ExternalDataError(
            f"tensor {tensor!r}: external data location {loc!r} {bad}; it must name a file "
            "inside the model's folder (open with external_data=False to view the structure)"
        )
    offset, length = (
        _external_int(entries, "offset", tensor),
        _external_int(entries, "length", tensor),
    )
    root = model_dir.resolve()
    current = root
    for part in [p for p in loc.split("/") if p and p != "."]:
        current = current / part
        try:
            st = os.lstat(current)
        except OSError:
            raise ExternalDataError(
                f"tensor {tensor!r}: external data file {loc!r} does not exist next to the model"
            ) from None
        if stat.S_ISLNK(st.st_mode):
            raise ExternalDataError(
                f"tensor {tensor!r}: external data path {loc!r} goes through a symbolic link"
            )
    if not current.is_relative_to(root):
        raise ExternalDataError(f"tensor {tensor!r}: {loc!r} resolves outside the model folder")
    st = os.lstat(current)
    if not stat.S_ISREG(st.st_mode):
        raise ExternalDataError(f"tensor {tensor!r}: external data {loc!r} is not a regular file")
    if st.st_nlink > 1:
        raise ExternalDataError(
            f"tensor {tensor!r}: external data {loc!r} has {st.st_nlink} hard links; "
            "copy it to a plain file"
        )
    if offset > st.st_size or (length is not None and offset + length > st.st_size):
        raise ExternalDataError(
            f"tensor {tensor!r}: offset/length run past the end of {loc!r} ({st.st_size} bytes)"
        )
    return ExternalRef(current, offset, length)


def _external_int(entries: dict[str, str], key: str, tensor: str) -> int:
    raw = entries.get(key)
    if raw is None:
        return 0 if key == "offset" else -1
    if not raw.isdigit() or len(raw) > 20 or int(raw) > _limits.EXTERNAL_DATA_CAP:
        raise ExternalDataError(
            f"tensor {tensor!r}: external data {key} {raw[:30]!r} is not allowed"
        )
    return int(raw)


def open_external(ref: ExternalRef) -> int:
    """Open the file of a record `check_external` validated: a read-only descriptor, never
    through a symbolic link (O_NOFOLLOW), never blocking on a FIFO; re-checked on the open
    descriptor to be a regular file with one hard link. The caller closes it."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(ref.path, flags)
    except OSError as e:
        raise ExternalDataError(
            f"external data {ref.path.name} cannot be opened safely ({e.strerror})"
        ) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise ExternalDataError(
            f"{ref.path.name} changed while being opened (not a regular file with one link)"
        )
    return fd


def read_external(ref: ExternalRef, nbytes: int) -> bytes:
    """`nbytes` of a validated external-data record, read from `ref.offset` (see
    `open_external`); a file shorter than that is a `ModelFormatError`."""
    fd = open_external(ref)
    parts: list[bytes] = []
    got = 0
    try:
        while got < nbytes:  # one pread returns at most ~2 GB
            part = os.pread(fd, min(nbytes - got, 1 << 30), ref.offset + got)
            if not part:
                break
            parts.append(part)
            got += len(part)
    finally:
        os.close(fd)
    data = b"".join(parts)
    if len(data) != nbytes:
        raise ModelFormatError(f"{ref.path.name}: external data shorter than the tensor needs")
    return data


def load(
    target: object, *, trust: bool = False, external_data: bool = True, **options: Any
) -> Model:
    """Parse an ONNX model into the Graph IR plus its initializers as weights."""
    require("onnx", "onnx")
    import onnx

    _limits.check_onnx_version()
    path = Path(str(target))
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # protobuf DecodeError and friends
        raise ModelFormatError(f"{path.name} is not a readable ONNX model ({e})") from None
    from deepscope.sources._onnx_checks import check_text
    from deepscope.sources._onnx_functions import infer
    from deepscope.sources._onnx_graph import GraphBuilder

    check_text(proto)
    inferred, notes = infer(proto, path)

    builder = GraphBuilder(inferred.graph)
    graph = builder.build()
    graph.meta.update(
        {
            "source": "onnx",
            "opsets": {d.domain or "ai.onnx": d.version for d in proto.opset_import},
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
            "irVersion": proto.ir_version,
        }
    )
    weights = _weights(builder.initializers, path.parent, external_data, notes)
    stats = builder.stats
    for node in graph.nodes:
        for p in node.params:
            if p.name in stats:
                node.attrs.setdefault("paramStats", {})[p.name] = stats[p.name]
    return Model(graph=graph, weights=weights, format="onnx", notes=notes)


def _weights(
    inits: list[Any], model_dir: Path, external_data: bool, notes: list[str]
) -> dict[str, WeightInfo]:
    from onnx import TensorProto

    from deepscope.sources._onnx_checks import check_initializer, to_array

    out: dict[str, WeightInfo] = {}
    skipped = 0
    for t in inits:
        spec = check_initializer(t)
        dtype = spec.dtype.name if spec.dtype != np.dtype(object) else "string"
        values: np.ndarray | None = None
        if t.data_location == TensorProto.EXTERNAL:
            if not external_data:
                skipped += 1
            else:
                ref = check_external(model_dir, {e.key: e.value for e in t.external_data}, t.name)
                if ref.length is not None and ref.length >= 0 and ref.length < spec.nbytes:
                    raise ModelFormatError(
                        f"initializer {t.name!r}: external data length {ref.length} is less "
                        f"than the {spec.nbytes} bytes its shape and type need"
                    )
                if ref.offset + spec.nbytes > ref.path.stat().st_size:
                    raise ModelFormatError(
                        f"initializer {t.name!r} needs {spec.nbytes} bytes of {ref.path.name} "
                        f"from offset {ref.offset}; the file is shorter"
                    )
                if spec.numel <= _limits.SMALL_TENSOR_NUMEL:
                    values = to_array(t, read_external(ref, spec.nbytes))
        elif spec.numel <= _limits.SMALL_TENSOR_NUMEL:
            values = to_array(t)
        out[t.name] = WeightInfo(t.name, spec.shape, dtype, values)
    if skipped:
        notes.append(f"external data not loaded for {skipped} tensors (external_data=False)")
    return out


__all__ = [
    "ExternalRef",
    "check_external",
    "load",
    "match",
    "namespace_from_name",
    "normalise_op",
    "open_external",
    "read_external",
]
