"""A view without a server: the payload, the static report and the notebook widget's module.

The dashboard, the notebook widget and the static report are one frontend build with three
entry points (``frontend/src/entries/``) that draw the same panel components. The widget
and the report read a *snapshot* instead of the HTTP API: the server's answers keyed by
`request_key` (the base requests: one run, one tag, no paging; the page answers zoomed or
filtered requests from them, ``frontend/src/entries/offline.ts``) and every blob they name
inlined as a ``data:`` URL. `ViewBuffer` collects what analysis results log (it is a
`registry.BlobWriter`, like a run) and makes a snapshot of one run (`ViewBuffer.snapshot`,
answers built by the same `registry.build_items` the server uses);
`deepscope.notebook.snapshot` records one from a log directory through the server itself.
`report_html` writes a snapshot and the report bundle into one HTML file that needs no
network; `widget_esm` is the anywidget module that draws one from a model's ``payload``
trait. `EmbedPayload` (one kind's answer, version 1) is still read.

Stdlib only, like the rest of ``views/``: a report can be written where torch is absent.

Example:
    >>> buffer = ViewBuffer("mnist")
    >>> result.log(buffer, "grad_cam", step=0)  # doctest: +SKIP
    >>> Path("report.html").write_text(report_html(buffer.snapshot()))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypedDict

from deepscope import _jsonstrict
from deepscope.errors import DeepscopeError
from deepscope.views import registry
from deepscope.views.schema import validate

__all__ = [
    "APP_DIR",
    "EmbedPayload",
    "Snapshot",
    "ViewBuffer",
    "blob_key",
    "report_html",
    "report_script",
    "request_key",
    "widget_esm",
    "widget_esm_path",
]

APP_DIR = Path(__file__).resolve().parents[1] / "server" / "static" / "app"
"""The built frontend (``npm run build`` in ``frontend/``); the embeds are in ``embed/``."""

_DATA_PREFIX = {
    "png": "data:image/png;base64,",
    "json": "data:application/json;base64,",
    registry.ARRAY_EXT: "data:application/x-deepscope-array;base64,",
}
ARRAY_MAX_SIZE = 256
"""Arrays inlined by `ViewBuffer.snapshot` are downsampled by their kind's hook to this many
cells per side (the server's ``maxSize``): a notebook output stays small."""


def request_key(path: str, params: list[tuple[str, str]] | tuple[tuple[str, str], ...] = ()) -> str:
    """The canonical key of a request in a snapshot: ``[path, sorted [name, value] pairs]``
    as compact JSON (``requestKey`` in ``frontend/src/entries/offline.ts``)."""
    pairs = sorted([str(k), str(v)] for k, v in params)
    return json.dumps([path, pairs], separators=(",", ":"), ensure_ascii=False)


def blob_key(run: str, blob_id: int | str) -> str:
    """The key of a blob in a snapshot: run and id (``blobKey`` in ``offline.ts``)."""
    return f"{run}\u0000{blob_id}"


class Snapshot(TypedDict):
    """What the report and the widget draw (``frontend/src/entries/offline.ts``): server
    answers by `request_key`, blobs as ``data:`` URLs by `blob_key`; `panel` is the panel
    drawn alone (a view kind or a tab name such as "graph"), None for the whole dashboard;
    `runs` the runs it draws."""

    format: Literal["deepscope-snapshot"]
    version: Literal[1]
    panel: str | None
    runs: list[str]
    answers: dict[str, Any]
    blobs: dict[str, str]


class EmbedPayload(TypedDict):
    """What the widget and the report draw (``frontend/src/entries/embedded.tsx``)."""

    format: Literal["deepscope-embed"]
    version: Literal[1]
    kind: str
    view: dict[str, Any]
    blobs: dict[str, str]


@dataclass(frozen=True)
class _Blob:
    id: int
    kind: str
    tag: str
    step: int
    wall_time: float
    meta: dict[str, Any]
    ext: str
    data: bytes


@dataclass
class ViewBuffer:
    """A run in memory: analysis results `log` into it as into a run (``log_blob``), and
    `payload` turns what was logged into an embed payload. `name` is the run name shown."""

    name: str = "notebook"
    blobs: list[_Blob] = field(default_factory=list)

    def log_blob(
        self,
        kind: str,
        tag: str,
        data: bytes,
        *,
        ext: str,
        meta: Mapping[str, Any] | None = None,
        step: int | None = None,
    ) -> int:
        """Keep one blob; its id is its position (from 1). `step` None counts as 0."""
        blob = _Blob(len(self.blobs) + 1, kind, tag, 0 if step is None else int(step),
                     time.time(), dict(meta or {}), ext, bytes(data))  # fmt: skip
        self.blobs.append(blob)
        return blob.id

    def payload(self, kind: str) -> EmbedPayload:
        """The embed payload of view kind `kind`: its wire answer (checked against the kind's
        response schema) and every PNG/JSON blob it names as a ``data:`` URL. Array parts are
        not inlined (no panel draws them yet): their refs are null."""
        k = registry.get(kind)
        main = [b for b in self.blobs if b.kind == k.name]
        parts = {p.blob_kind: [b for b in self.blobs if b.kind == p.blob_kind]
                 for p in k.parts.values()}  # fmt: skip
        items, skipped = registry.build_items(
            k, main, parts, url=lambda _: "", array_url=lambda _: ""
        )
        by_id = {b.id: b for b in self.blobs}
        inlined: dict[str, str] = {}
        for item in items:
            inlined[str(item["id"])] = _data_url(by_id[item["id"]])
            for name, ref in item["parts"].items():
                if ref is None:
                    continue
                if ref["encoding"] == "array":
                    item["parts"][name] = None
                else:
                    inlined[str(ref["id"])] = _data_url(by_id[ref["id"]])
        view = {"kind": k.name, "run": self.name, "items": items, "skipped": skipped}
        validate(view, k.response)
        return {"format": "deepscope-embed", "version": 1, "kind": k.name, "view": view,
                "blobs": inlined}  # fmt: skip

    def kinds(self) -> list[str]:
        """The registered view kinds that something was logged as, in logging order."""
        known = {k.name for k in registry.kinds()}
        return list(dict.fromkeys(b.kind for b in self.blobs if b.kind in known))

    def snapshot(self, panel: str | None = None) -> Snapshot:
        """A snapshot of this buffer as one run: every logged view kind's
        ``/api/views/<kind>`` answer (checked against its response schema), its tags and
        every blob inlined (arrays downsampled to `ARRAY_MAX_SIZE` per side). `panel` is the
        panel drawn: by default the first kind logged."""
        kinds = self.kinds()
        if not kinds:
            raise DeepscopeError("nothing was logged into this ViewBuffer: log a result first")
        answers: dict[str, Any] = {}
        tags: dict[tuple[str, str], list[int]] = {}
        for name in kinds:
            k = registry.get(name)
            main = [b for b in self.blobs if b.kind == k.name]
            parts = {p.blob_kind: [b for b in self.blobs if b.kind == p.blob_kind]
                     for p in k.parts.values()}  # fmt: skip
            items, skipped = registry.build_items(
                k, main, parts, url=lambda _: "", array_url=lambda _: ""
            )
            view = {"kind": k.name, "run": self.name, "items": items, "skipped": skipped}
            validate(view, k.response)
            answers[request_key(f"views/{k.name}", [("run", self.name)])] = view
            for b in main:
                tags.setdefault((k.name, b.tag), []).append(b.step)
        for k in registry.kinds():  # a panel asks for other kinds too: they are empty here
            empty = {"kind": k.name, "run": self.name, "items": [], "skipped": 0}
            answers.setdefault(request_key(f"views/{k.name}", [("run", self.name)]), empty)
        answers[request_key("tags", [("run", self.name)])] = {"tags": [
            {"run": self.name, "tag": tag, "kind": kind, "count": len(steps),
             "firstStep": min(steps), "lastStep": max(steps)}
            for (kind, tag), steps in tags.items()
        ]}  # fmt: skip
        blobs = {blob_key(self.name, b.id): _data_url(_small(b)) for b in self.blobs}
        return {"format": "deepscope-snapshot", "version": 1, "panel": panel or kinds[0],
                "runs": [self.name], "answers": answers, "blobs": blobs}  # fmt: skip


def _small(blob: _Blob) -> _Blob:
    """`blob`, an array downsampled by its kind's hook when over `ARRAY_MAX_SIZE`."""
    if blob.ext != registry.ARRAY_EXT:
        return blob
    from deepscope.views import envelope

    owner = next((k for k in registry.kinds() if blob.kind in k.part_kinds()), None)
    header = envelope.read_header(blob.data)
    if owner is None or len(header.shape) < 2 or max(header.shape[-2:]) <= ARRAY_MAX_SIZE:
        return blob
    small = owner.downsample(envelope.decode(blob.data), ARRAY_MAX_SIZE)
    data = envelope.encode(small, header.dtype)
    return _Blob(blob.id, blob.kind, blob.tag, blob.step, blob.wall_time, blob.meta, blob.ext, data)


def _data_url(blob: _Blob) -> str:
    prefix = _DATA_PREFIX.get(blob.ext)
    if prefix is None:
        raise DeepscopeError(
            f"blob {blob.id} ({blob.ext}) cannot be inlined; only png, json and arrays"
        )
    return prefix + base64.b64encode(blob.data).decode("ascii")


def _built(name: str) -> Path:
    path = APP_DIR / "embed" / name
    if not path.is_file():
        raise DeepscopeError(
            f"the frontend's {name} is not built ({path} is missing): run `npm ci && npm run "
            "build` in frontend/, or reinstall deepscope (pip install -e . builds it)"
        )
    return path


def widget_esm_path() -> Path:
    """The notebook widget's ES module (anywidget ``_esm``): ``render({model, el})`` draws
    the embed payload in the model's ``payload`` trait and redraws when it changes."""
    return _built("widget.js")


def widget_esm() -> str:
    """The text of `widget_esm_path`."""
    return widget_esm_path().read_text(encoding="utf-8")


def report_script() -> str:
    """The report entry's bundle (its CSS travels inside it as text)."""
    return _built("report.js").read_text(encoding="utf-8")


def _json_for_html(payload: Mapping[str, Any]) -> str:
    """Strict JSON that cannot end its ``<script>`` element: ``<``, ``>`` and ``&`` are
    written as JSON escapes (so ``</script>`` in a tag or label stays text)."""
    text = _jsonstrict.dumps(payload)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _script_for_html(js: str) -> str:
    # `</script` and `<!--` cannot occur in the bundle's code, only in its string literals,
    # where `<\/script` and `\x3c!--` mean the same characters.
    return js.replace("</script", "<\\/script").replace("<!--", "\\x3c!--")


def report_html(
    payload: Snapshot | EmbedPayload, title: str = "deepscope report", *, script: str | None = None
) -> str:
    """One self-contained HTML file that draws `payload` (a `Snapshot`, or an `EmbedPayload`)
    with the report entry: the bundle (`script`, default `report_script()`) and the payload
    are inlined, so it opens from ``file://`` and makes no request."""
    if payload.get("format") not in ("deepscope-snapshot", "deepscope-embed"):
        raise DeepscopeError("report_html takes a snapshot (ViewBuffer.snapshot())")
    escaped_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{escaped_title}</title>\n"
        '<link rel="icon" href="data:,">\n</head>\n<body>\n<main id="app"></main>\n'
        f'<script type="application/json" id="deepscope-data">{_json_for_html(payload)}</script>\n'
        f'<script type="module">{_script_for_html(script or report_script())}</script>\n'
        "</body>\n</html>\n"
    )
