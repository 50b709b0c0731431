"""Import TensorBoard event files into a deepscope log directory.

Each directory under the TensorBoard logdir that holds ``events.out.tfevents.*`` files
becomes one deepscope run, named after its path (``a/b`` → ``a-b``). Scalars, histograms,
images and text are imported with their original steps and wall times, written straight
through the store's `RunWriter` (no torch, no TensorFlow: tensorboard's own record
reader). Both the TF1 summary fields (``simple_value``, ``histo``, ``image``) and the TF2
tensor summaries of the scalars, histograms, images and text plugins are read.

Example:
    >>> from deepscope.store.tb_import import import_tb
    >>> summary = import_tb("tb_logs", "runs")  # doctest: +SKIP
    >>> summary.runs["train"].scalars  # doctest: +SKIP
    1000
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from deepscope._histdata import HistogramData
from deepscope.errors import require
from deepscope.store import jsonenc
from deepscope.store.blobs import blob_relpath
from deepscope.store.protocol import BlobRecord, HistogramRecord, ScalarRecord, WriteRecord
from deepscope.store.schema import sanitize_run_name
from deepscope.store.writer import RunWriter, WriterOptions

EVENT_FILE_MARKER = "events.out.tfevents."
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # IHDR colour type -> channels
_MAX_IMAGE_PIXELS = 89_478_485  # Pillow's default decompression-bomb limit
_FMAX = 1.7976931348623157e308


@dataclass
class RunSummary:
    """What one imported run received."""

    source: str
    scalars: int = 0
    histograms: int = 0
    images: int = 0
    texts: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class ImportSummary:
    """The result of `import_tb`: one `RunSummary` per deepscope run name."""

    runs: dict[str, RunSummary] = field(default_factory=dict)


Progress = Callable[[int], None]


def find_runs(tb_logdir: str | os.PathLike[str]) -> dict[str, list[Path]]:
    """Map deepscope run name -> sorted event files, for every directory holding any."""
    root = Path(tb_logdir)
    if not root.is_dir():
        raise FileNotFoundError(f"TensorBoard log directory {str(root)!r} does not exist")
    runs: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        files = sorted(f for f in filenames if EVENT_FILE_MARKER in f)
        if not files:
            continue
        rel = Path(dirpath).relative_to(root)
        label = "-".join(rel.parts) if rel.parts else root.resolve().name
        name = sanitize_run_name(label or "tensorboard")
        runs.setdefault(name, []).extend(Path(dirpath) / f for f in files)
    return runs


def import_tb(
    tb_logdir: str | os.PathLike[str],
    logdir: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import every TensorBoard run under `tb_logdir` into `logdir`; return what came in.

    `progress` is called with the number of event-file bytes done after each file.
    Raises `FileNotFoundError` if `tb_logdir` has no event files.
    """
    require("tensorboard", "tensorboard")
    runs = find_runs(tb_logdir)
    if not runs:
        raise FileNotFoundError(
            f"no TensorBoard event files ({EVENT_FILE_MARKER}*) under {str(tb_logdir)!r}"
        )
    summary = ImportSummary()
    root = Path(logdir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    for name, files in runs.items():
        summary.runs[name] = _import_run(root / name, name, files, progress)
    return summary


def _import_run(
    run_dir: Path, name: str, files: list[Path], progress: Progress | None
) -> RunSummary:
    run_dir.mkdir(exist_ok=True)
    options = WriterOptions(strict=True, flush_interval=1.0)
    config = jsonenc.dumps({"imported_from": str(files[0].parent.resolve())})
    writer = RunWriter(run_dir, name, config_json=config, options=options)
    result = RunSummary(source=str(files[0].parent))
    state = "interrupted"
    try:
        for path in files:
            for item in _items(path, result):
                writer.put(item, len(item.data) if isinstance(item, BlobRecord) else 0)
            if progress is not None:
                progress(path.stat().st_size)
        writer.flush()
        state = "finished"
    finally:
        writer.close(state)
    return result


def _items(path: Path, result: RunSummary) -> Iterator[WriteRecord]:
    from tensorboard.backend.event_processing.event_file_loader import (
        LegacyEventFileLoader,
    )

    plugins: dict[str, str] = {}  # TF2 writes a tag's plugin metadata on its first value only
    for event in LegacyEventFileLoader(str(path)).Load():
        if not event.HasField("summary"):
            continue
        step, wall = int(event.step), float(event.wall_time)
        for value in event.summary.value:
            plugin = value.metadata.plugin_data.plugin_name
            if plugin:
                plugins[value.tag] = plugin
            item = _convert(value, plugins.get(value.tag, ""), step, wall)
            if item is None:
                which = value.WhichOneof("value") or "empty"
                result.skipped[which] = result.skipped.get(which, 0) + 1
                continue
            kind = item[0] if item[0] != "b" else item[1]
            if kind == "s":
                result.scalars += 1
            elif kind == "h":
                result.histograms += 1
            elif kind == "image":
                result.images += 1
            else:
                result.texts += 1
            yield item


def _convert(value: Any, plugin: str, step: int, wall: float) -> WriteRecord | None:
    tag = value.tag
    which = value.WhichOneof("value")
    if which == "simple_value":
        return ScalarRecord("s", step, wall, [(tag, float(value.simple_value))])
    if which == "histo":
        return HistogramRecord("h", tag, step, wall, histogram_from_proto(value.histo))
    if which == "image":
        img = value.image
        return _image(tag, step, wall, bytes(img.encoded_image_string))
    if which != "tensor":
        return None
    from tensorboard.util import tensor_util

    array = tensor_util.make_ndarray(value.tensor)
    if plugin == "scalars" and array.size == 1:
        return ScalarRecord("s", step, wall, [(tag, float(array.reshape(-1)[0]))])
    if plugin == "histograms" and array.ndim == 2 and array.shape[1] == 3:
        return HistogramRecord("h", tag, step, wall, histogram_from_buckets(array))
    if plugin == "images" and array.ndim == 1 and array.size >= 3:
        return _image(tag, step, wall, bytes(array[2]))  # [width, height, image, ...]
    if plugin == "text" and array.size >= 1:
        tag = tag.removesuffix("/text_summary")  # torch's add_text appends it
        text = "\n".join(_text(x) for x in array.reshape(-1))
        data = text.encode("utf-8")
        meta = jsonenc.dumps({"length": len(text)})
        return BlobRecord("b", "text", tag, step, wall, blob_relpath(data, "txt"), data, meta)
    return None


def _text(x: Any) -> str:
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def _image(tag: str, step: int, wall: float, data: bytes) -> WriteRecord | None:
    meta = png_meta(data)
    if meta is None:
        return None  # not a PNG (JPEG/GIF summaries are rare): counted as skipped
    return BlobRecord(
        "b", "image", tag, step, wall, blob_relpath(data, "png"), data, jsonenc.dumps(meta)
    )


def png_meta(data: bytes) -> dict[str, Any] | None:
    """``{"width", "height", "channels"}`` from a PNG header; None if not a sane PNG."""
    if len(data) < 33 or not data.startswith(_PNG_MAGIC) or data[12:16] != b"IHDR":
        return None
    width, height, _depth, colour = struct.unpack(">IIBB", data[16:26])
    if width * height > _MAX_IMAGE_PIXELS or colour not in _PNG_CHANNELS:
        return None
    return {"width": width, "height": height, "channels": _PNG_CHANNELS[colour]}


def histogram_from_proto(h: Any) -> HistogramData:
    """A TF `HistogramProto` (right bucket limits + counts + stats) as edges + counts.

    Bucket ``i`` spans ``(limit[i-1], limit[i]]``; the first starts at ``min``. Edges are
    clipped to ``[min, max]`` so TF's ±DBL_MAX outer limits do not stretch the range.
    """
    limits = np.asarray(h.bucket_limit, dtype=np.float64)
    counts = np.asarray(h.bucket, dtype=np.float64)
    lo, hi = float(h.min), float(h.max)
    if counts.size == 0 or limits.size != counts.size or not counts.sum() > 0 or not lo <= hi:
        return _empty(max(counts.size, 1), float(h.sum), float(h.sum_squares))
    edges = np.concatenate([[lo], limits])
    edges = np.maximum.accumulate(np.clip(edges, max(lo, -_FMAX), min(hi, _FMAX)))
    edges[0], edges[-1] = max(lo, -_FMAX), min(hi, _FMAX)
    return _histogram(edges, counts, lo, hi, float(h.sum), float(h.sum_squares))


def histogram_from_buckets(buckets: npt.NDArray[Any]) -> HistogramData:
    """A TF2 histogram tensor ``[[left, right, count], ...]`` as edges + counts.

    The plugin keeps no sum or sum of squares: they are stored as NaN (read as null).
    """
    b = np.asarray(buckets, dtype=np.float64)
    counts = b[:, 2] if b.size else np.zeros(0)
    if counts.size == 0 or not counts.sum() > 0:
        return _empty(max(counts.size, 1), math.nan, math.nan)
    lo, hi = float(b[0, 0]), float(b[-1, 1])
    edges = np.maximum.accumulate(np.concatenate([[lo], b[:, 1]]))
    return _histogram(edges, counts, lo, hi, math.nan, math.nan)


def _histogram(
    edges: npt.NDArray[np.float64],
    counts: npt.NDArray[np.float64],
    lo: float,
    hi: float,
    total: float,
    total_sq: float,
) -> HistogramData:
    ints = np.rint(counts).astype(np.int64)
    return HistogramData(
        edges=edges.astype(np.float64),
        counts=ints,
        count=int(ints.sum()),
        n_nan=0,
        n_posinf=0,
        n_neginf=0,
        min=lo,
        max=hi,
        sum=total,
        sum_sq=total_sq,
    )


def _empty(bins: int, total: float, total_sq: float) -> HistogramData:
    return HistogramData(
        edges=np.linspace(-0.5, 0.5, bins + 1),
        counts=np.zeros(bins, dtype=np.int64),
        count=0,
        n_nan=0,
        n_posinf=0,
        n_neginf=0,
        min=None,
        max=None,
        sum=0.0 if math.isnan(total) else total,
        sum_sq=0.0 if math.isnan(total_sq) else total_sq,
    )
