"""`deepscope.init()` and `Run`: log scalars, histograms, images, text, graphs and events.

Example:
    >>> import deepscope
    >>> with deepscope.init(logdir="runs", config={"lr": 0.1}) as run:  # doctest: +SKIP
    ...     for step in range(100):
    ...         run.log({"loss": 1 / (step + 1)})

`log*()` only enqueues; a background thread commits every `flush_interval` seconds.
Durability (docs/threats.md, Durability):

* after kill -9, an OOM kill or a segfault of the training process, everything logged
  before the last returned `flush()` is present; at most one flush interval is lost;
  batches are all-or-nothing; the store opens with no repair; the run shows as
  ``interrupted`` (at once on the same machine, whose reader sees the process is gone;
  from elsewhere once the heartbeat is stale);
* after an OS crash or power loss the store is consistent; with the default
  ``durability="normal"`` the last batches may roll back; ``durability="full"`` makes
  every returned `flush()` survive (provided the disk honours fsync).

A store error (disk full, read-only, deleted) never stops training: one warning, a
`dropped` count and a spill file (``LOGDIR/<run>.spill.jsonl``); ``strict=True`` raises
`StoreError` from the next `log*`/`flush` call instead.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

from deepscope.errors import StoreError, require
from deepscope.store import jsonenc
from deepscope.store.blobs import blob_relpath, check_ext
from deepscope.store.protocol import (
    BlobRecord,
    EventRecord,
    HistogramRecord,
    RunWriter,
    ScalarRecord,
)
from deepscope.store.targets import open_writer
from deepscope.store.writer import DeviceValue, WriterOptions, install_signal_handlers
from deepscope.tracking._group import apply_group
from deepscope.tracking._views import ViewLogging
from deepscope.tracking.values import check_text, escape_text, to_scalar, to_step
from deepscope.views.registry import write as views_write

if TYPE_CHECKING:
    from deepscope.tracking.watch import Watcher

__all__ = ["Run", "init"]

_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_RESERVED_KINDS = frozenset({"scalar", "histogram"})
_SEVERITIES = ("info", "warning", "error")
MAX_TAG = 512
MAX_CHECKED_TAGS = 10_000  # tags a Run remembers as valid (then checks each time)
_INT64 = 2**63


def _config_json(config: Any) -> str:
    if config is None:
        return "{}"
    if not isinstance(config, Mapping):
        if hasattr(config, "__dataclass_fields__"):
            pass
        elif hasattr(config, "__dict__") and type(config).__name__ == "Namespace":
            config = vars(config)  # argparse.Namespace
        else:
            raise TypeError(
                f"config must be a dict (or a dataclass / argparse.Namespace), not {type(config).__name__}"
            )
    try:
        return jsonenc.dumps(config)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"config must be JSON-serialisable: {exc}") from exc


def _bad_tag(tag: Any) -> None:
    if not isinstance(tag, str):
        raise TypeError(f"tags must be strings, not {type(tag).__name__} ({tag!r:.40})")
    if not tag:
        raise ValueError("tags must not be empty")
    if len(tag) > MAX_TAG or "\x00" in tag:
        raise ValueError(f"tag {tag[:40]!r}… is longer than {MAX_TAG} characters or holds NUL")
    check_text("tag", tag)  # a lone surrogate: refused here, never a lost batch later


def _tag_ok(tag: Any) -> bool:
    """The cheap test; `_bad_tag` says what is wrong (and passes valid non-ASCII tags)."""
    return type(tag) is str and 0 < len(tag) <= MAX_TAG and tag.isascii() and "\x00" not in tag


def _convert(pairs: tuple[tuple[Any, Any], ...], checked: set[str]) -> list[tuple[str, Any]]:
    out = []
    for k, v in pairs:
        if type(k) is not str or k not in checked:
            _bad_tag(k)
            if len(checked) < MAX_CHECKED_TAGS:
                checked.add(k)
        out.append((k, v if type(v) is float else to_scalar(k, v)))
    return out


def _code(pairs: list[tuple[str, Any]]) -> Literal["s", "d"]:
    # "d": some values are device tensors, read in the writer thread
    return "d" if any(type(v) is DeviceValue for _, v in pairs) else "s"


class Run(ViewLogging):
    """One training run being logged. Create it with `deepscope.init`.

    Attributes: `name`, `directory` (``LOGDIR/<name>``), `step` (the step of the latest
    `log` call: the one given, or automatic 0, 1, 2, … counting `log` calls), `dropped`
    (points that went to the spill file instead of the store), `config`.
    """

    def __init__(self, writer: RunWriter, config: dict[str, Any]) -> None:
        self._writer = writer
        self.name: str = writer.name
        self.directory: Path | None = writer.directory  # None for a database store
        self.config = config
        self._step = 0
        self._next = 0
        self._closed = False
        self._watchers: dict[int, Watcher] = {}
        self._checked: set[str] = set()  # tags known to be valid

    # ---- properties -----------------------------------------------------------------------
    @property
    def step(self) -> int:
        return self._step

    @property
    def dropped(self) -> int:
        """How many points could not be stored (they are in `spill_path`)."""
        return self._writer.dropped

    @property
    def spill_path(self) -> Path | None:
        return self._writer.spill_path

    def __repr__(self) -> str:
        where = str(self.directory) if self.directory is not None else self._writer.location
        return f"<deepscope.Run {self.name!r} at {where!r} step={self._step}>"

    # ---- logging --------------------------------------------------------------------------
    def _guard(self) -> None:
        if self._closed:
            raise StoreError(f"run '{self.name}' is finished; call deepscope.init() for a new run")
        self._writer.check()

    def log(self, values: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalars: ``run.log({"loss": loss, "acc": acc}, step=None)``.

        Values: python numbers, numpy scalars, 1-element numpy arrays or torch tensors
        (any device and dtype; accelerator tensors are read without a device sync).
        NaN and ±Inf are stored as such. One call is one atomic unit in the store.
        What the store cannot hold is refused here, before anything is queued: a tag that
        is empty, too long, holds NUL or a lone surrogate (`ValueError`), a step outside
        int64 (`ValueError`).
        """
        w = self._writer
        if w.has_pending or self._closed:
            self._guard()
        if type(values) is not dict and not isinstance(values, Mapping):
            raise TypeError(f"run.log takes a dict of tag -> number, not {type(values).__name__}")
        if step is None:
            step = self._next
        if type(step) is not int or not -_INT64 <= step < _INT64:
            step = to_step(step)  # raises outside int64: the store cannot hold it
        pairs: Any = tuple(values.items())
        checked = self._checked
        for k, v in pairs:
            if type(v) is not float or type(k) is not str or k not in checked:
                pairs = _convert(pairs, checked)
                break
        self._step = step
        self._next = step + 1
        if pairs:
            # a ScalarRecord built as a plain tuple of its fields: 1.5 us cheaper per call
            # than the named tuple (the writer dispatches on the code in field 0)
            code = "s" if type(pairs) is tuple else _code(pairs)
            w.put(cast(ScalarRecord, (code, step, time.time(), pairs)))
            if self._watchers:
                self._observe(pairs, step)

    def _observe(self, pairs: list[tuple[str, Any]], step: int) -> None:
        for tag, v in pairs:
            if "loss" in tag.lower():
                value = v if type(v) is float else v.get()
                for watcher in list(self._watchers.values()):
                    watcher.observe_scalar(tag, value, step)

    def _step_or_current(self, step: Any) -> int:
        return self._step if step is None else to_step(step)

    def log_histogram(self, tag: str, values: Any, step: int | None = None, bins: int = 64) -> None:
        """Log a histogram of `values` (tensor, array, list): finite values in `bins` bins
        plus counts of NaN, +Inf and -Inf. A tensor off the CPU is reduced on its device."""
        self._guard()
        if not _tag_ok(tag):
            _bad_tag(tag)
        require("numpy", "arrays")  # the base install (serve) has no numpy
        from deepscope.tracking.histogram import begin_histogram

        pending = begin_histogram(values, bins)
        self._writer.put(
            HistogramRecord("h", tag, self._step_or_current(step), time.time(), pending)
        )

    def log_image(
        self, tag: str, image: Any, step: int | None = None, dataformats: str | None = None
    ) -> str:
        """Log an image (tensor, array or PIL image) as PNG; bad shapes raise here."""
        require("numpy", "arrays")  # the base install (serve) has neither numpy nor Pillow
        require("PIL", "arrays")
        from deepscope.tracking.image import encode_image

        self._guard()
        data, meta = encode_image(image, dataformats=dataformats)
        return self.log_blob("image", tag, data, ext="png", meta=meta, step=step)

    def log_text(self, tag: str, text: str, step: int | None = None) -> str:
        """Log a piece of text (shown as plain text, never as HTML)."""
        if not isinstance(text, str):
            raise TypeError(f"run.log_text takes a str, not {type(text).__name__}")
        data = escape_text(text).encode("utf-8")  # a lone surrogate is kept as \udcxx
        return self.log_blob("text", tag, data, ext="txt", meta={"length": len(text)}, step=step)

    def log_blob(
        self,
        kind: str,
        tag: str,
        data: bytes,
        *,
        ext: str,
        meta: Mapping[str, Any] | None = None,
        step: int | None = None,
    ) -> str:
        """Store `data` as a content-addressed file and a row of `kind` under `tag`.

        Returns its path relative to the run directory (``blobs/ab/<sha256>.<ext>``).
        """
        self._guard()
        if not isinstance(kind, str) or not _KIND.fullmatch(kind) or kind in _RESERVED_KINDS:
            raise ValueError(
                f"blob kind {kind!r} must be lower-case letters, digits or _ (not scalar/histogram)"
            )
        if not _tag_ok(tag):
            _bad_tag(tag)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"blob data must be bytes, not {type(data).__name__}")
        data = bytes(data)
        e = check_ext(ext)
        if meta is not None and not isinstance(meta, Mapping):
            raise TypeError(f"blob meta must be a dict, not {type(meta).__name__}")
        meta_json = jsonenc.dumps(dict(meta or {}))
        relpath = blob_relpath(data, e)
        step_ = self._step_or_current(step)
        self._writer.put(
            BlobRecord("b", kind, tag, step_, time.time(), relpath, data, meta_json), len(data)
        )
        return relpath

    def log_view(
        self,
        kind: str,
        tag: str,
        data: bytes,
        *,
        ext: str,
        meta: Mapping[str, Any],
        parts: Mapping[str, Any] | None = None,
        step: int | None = None,
    ) -> None:
        """Log one item of a registered view kind (`deepscope.views.registry.write`): `meta`
        is checked against the kind's schema before anything is written; `parts` maps the
        kind's part names to bytes (PNG/JSON) or arrays (stored as binary envelopes)."""
        views_write(self, kind, tag, data, ext=ext, meta=meta, parts=parts, step=step)

    def log_event(
        self,
        kind: str,
        message: str,
        *,
        severity: str = "warning",
        layer: str | None = None,
        step: int | None = None,
    ) -> None:
        """Log a diagnostic event (``severity`` info/warning/error), e.g. a NaN's origin."""
        self._guard()
        if severity not in _SEVERITIES:
            raise ValueError(f"severity must be one of {_SEVERITIES}, not {severity!r}")
        if not isinstance(kind, str) or not kind:
            raise ValueError("event kind must be a non-empty string")
        kind = check_text("event kind", str(kind))
        if layer is not None and not isinstance(layer, str):
            raise TypeError(f"layer must be a string or None, not {type(layer).__name__}")
        layer = None if layer is None else escape_text(str(layer))
        step_ = self._step_or_current(step)
        text = escape_text(str(message))  # free text: a lone surrogate is kept as \udcxx
        self._writer.put(EventRecord("e", step_, time.time(), severity, kind, layer, text))

    def log_graph(self, model_or_graph: Any, example_inputs: Any = None, tag: str = "model") -> str:
        """Store a model's graph (a `Graph`, a `Model`, or anything `deepscope.graph` takes)."""
        from deepscope.graph.ir import Graph
        from deepscope.graph.serialize import to_json
        from deepscope.sources.base import Model

        if isinstance(model_or_graph, Graph):
            graph = model_or_graph
        elif isinstance(model_or_graph, Model):
            graph = model_or_graph.graph
        else:
            from deepscope.sources import graph as build_graph

            graph = build_graph(model_or_graph, example_inputs)
        data = to_json(graph).encode("utf-8")
        meta = {"nodes": len(graph.nodes), "edges": len(graph.edges)}
        return self.log_blob("graph", tag, data, ext="json", meta=meta)

    # ---- watch ----------------------------------------------------------------------------
    def watch(
        self,
        model: Any,
        every: int = 100,
        what: Any = None,
        layers: Any = None,
        raise_on_nonfinite: bool = False,
        **options: Any,
    ) -> Watcher:
        """Log weights, gradients and activations of `model` every `every` iterations and
        run the diagnosis rules (see `deepscope.tracking.watch`)."""
        from deepscope.tracking.watch import Watcher

        self._guard()
        self.unwatch(model)
        kwargs: dict[str, Any] = dict(options)
        if what is not None:
            kwargs["what"] = what
        watcher = Watcher(
            self, model, every=every, layers=layers, raise_on_nonfinite=raise_on_nonfinite, **kwargs
        )
        self._watchers[id(model)] = watcher
        return watcher

    def unwatch(self, model: Any) -> None:
        """Remove every hook `watch(model)` installed (no-op if not watched)."""
        watcher = self._watchers.pop(id(model), None)
        if watcher is not None:
            watcher.close()

    # ---- lifecycle ------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged so far is committed (or spilled)."""
        if self._closed:
            return
        self._writer.flush(timeout)

    def finish(self) -> None:
        """Remove watch hooks, flush, and mark the run finished. Idempotent."""
        self._finish("finished")

    def _finish(self, state: str) -> None:
        if self._closed:
            return
        errors: list[BaseException] = []
        for watcher in list(self._watchers.values()):  # a closing watcher may still log
            try:
                watcher.close()
            except Exception as exc:  # hooks must go even if one close fails
                errors.append(exc)
        self._watchers.clear()
        self._closed = True
        self._writer.close(state)
        self._writer.check()
        if errors:
            raise errors[0]

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self._finish("finished")
            return
        try:
            self._finish("interrupted")
        except Exception as inner:  # do not hide the exception that is propagating
            print(f"deepscope: while finishing run '{self.name}': {inner}", file=sys.stderr)


def init(
    logdir: str | os.PathLike[str] | None = None,
    name: str | None = None,
    config: Any = None,
    durability: str = "normal",
    strict: bool = False,
    flush_interval: float = 1.0,
    *,
    allow_network_fs: bool = False,
    heartbeat_interval: float = 5.0,
    group: str | None = None,
    store: str | None = None,
) -> Run:
    """Start (or join) a run in ``logdir/<name>/run.db`` and return its `Run`.

    `logdir` (default ``"runs"``) or `store`: where the run goes, a log directory or a
    ``postgresql://user:password@host/db`` URL (the ``[postgres]`` extra; many hosts log into
    one database). Given neither, ``DEEPSCOPE_STORE`` names it when set.
    `name`: letters, digits and ``._-=+`` (others become ``-``); an existing run of that name
    is joined, so several processes can log into one run. Without a name: a fresh
    ``yyyymmdd-hhmmss-<hex>``. `config`: a JSON-serialisable dict. `durability`:
    ``"normal"`` or ``"full"`` (see the module doc). `strict`: raise `StoreError` on store
    faults instead of spilling. `allow_network_fs`: skip the refusal of NFS/SMB/FUSE.
    `group`: a distributed job's name; every rank then logs a run of its own,
    ``<name or group>.rank-<r>``, with its rank, world size and host in
    ``config["deepscope"]`` (`deepscope.tracking._group`).

    Example:
        >>> run = deepscope.init(logdir="runs", name="baseline", config={"lr": 3e-4})  # doctest: +SKIP
    """
    options = WriterOptions(
        durability=durability,
        strict=bool(strict),
        flush_interval=float(flush_interval),
        heartbeat_interval=float(heartbeat_interval),
    )
    config_json = _config_json(config)
    if group is not None:
        name, config_json = apply_group(group, name, config_json)
    if logdir is not None and store is not None:
        raise ValueError("pass logdir (a directory) or store (a directory or URL), not both")
    target = store if store is not None else logdir
    if target is None:
        target = os.environ.get("DEEPSCOPE_STORE", "").strip() or "runs"
    writer = open_writer(
        target, name, config_json=config_json, options=options, allow_network_fs=allow_network_fs
    )
    install_signal_handlers()
    return Run(writer, jsonenc.loads(config_json))
