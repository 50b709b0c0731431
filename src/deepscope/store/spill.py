"""The spill file: where points go, as strict JSON lines, while the store cannot take them.

``LOGDIR/<run>.spill.jsonl`` next to the run directory (which may be the thing that is
broken), else ``$TMPDIR/deepscope-<run>-<pid>.spill.jsonl``. One record per point:
``{"type": "scalar" | "histogram" | "blob" | "event", "tag", "step", "wallTime", ...}``
(blob bytes base64-encoded in ``data``).
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deepscope.store import jsonenc
from deepscope.store.device import DeviceValue


def append_spill(candidates: list[Path], items: list[Any]) -> Path | None:
    """Append `items` to the first candidate file that can be written; None if none can.

    Holds anything the queue can hold: strings with lone surrogates are escaped
    (``\\udcxx``, read back as the same string by any JSON reader), integers of any size
    are written as they are, and an item that still cannot be written becomes one
    ``{"type": "unreadable"}`` record instead of costing the others."""
    data = b"".join(_spill_lines(items))
    for path in candidates:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            return path
        except OSError:
            continue
    return None


def tmp_spill(name: str) -> Path:
    return Path(tempfile.gettempdir()) / f"deepscope-{name}-{os.getpid()}.spill.jsonl"


def _spill_lines(items: Iterable[Any]) -> Iterable[bytes]:
    for item in items:
        try:
            lines = [(jsonenc.dumps(rec) + "\n").encode() for rec in _spill_records([item])]
        except Exception as exc:  # an item that cannot be written as JSON: say so instead
            lines = [
                (jsonenc.dumps({"type": "unreadable", "error": repr(exc)[:200]}) + "\n").encode()
            ]
        yield from lines


def _spill_records(items: Iterable[Any]) -> Iterable[dict[str, Any]]:
    for it in items:
        code = it[0]
        if code in "sd":
            for tag, v in it[3]:
                value = v.get() if type(v) is DeviceValue else v
                yield {
                    "type": "scalar",
                    "tag": tag,
                    "step": it[1],
                    "wallTime": it[2],
                    "value": value,
                }
        elif code == "h":
            h = it[4]
            yield {
                "type": "histogram", "tag": it[1], "step": it[2], "wallTime": it[3],
                "edges": h.edges, "counts": h.counts, "count": h.count, "nNan": h.n_nan,
                "nPosinf": h.n_posinf, "nNeginf": h.n_neginf, "min": h.min, "max": h.max,
                "sum": h.sum, "sumSq": h.sum_sq,
            }  # fmt: skip
        elif code == "b":
            yield {
                "type": "blob", "kind": it[1], "tag": it[2], "step": it[3], "wallTime": it[4],
                "path": it[5], "meta": jsonenc.loads(it[7]),
                "data": base64.b64encode(it[6]).decode("ascii"),
            }  # fmt: skip
        elif code == "e":
            yield {
                "type": "event", "step": it[1], "wallTime": it[2], "severity": it[3],
                "kind": it[4], "layer": it[5], "message": it[6],
            }  # fmt: skip
