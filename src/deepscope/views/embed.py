"""A view without a server: the payload, the static report and the notebook widget's module.

The dashboard, the notebook widget and the static report are one frontend build with three
entry points (``frontend/src/entries/``) that draw the same panel components. The widget
and the report read one *embed payload* instead of the HTTP API: the kind's
``/api/views/<kind>`` answer (built by the same `registry.build_items` the server uses)
with the PNG/JSON blobs it names inlined as ``data:`` URLs. `ViewBuffer` collects what an
analysis result logs (it is a `registry.BlobWriter`, like a run) and makes that payload;
`report_html` writes it and the report bundle into one HTML file that needs no network;
`widget_esm` is the anywidget module that draws it from a model's ``payload`` trait.

Stdlib only, like the rest of ``views/``: a report can be written where torch is absent.

Example:
    >>> buffer = ViewBuffer("mnist")
    >>> result.log(buffer, "grad_cam", step=0)  # doctest: +SKIP
    >>> Path("report.html").write_text(report_html(buffer.payload("attribution")))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
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
    "ViewBuffer",
    "report_html",
    "report_script",
    "widget_esm",
    "widget_esm_path",
]

APP_DIR = Path(__file__).resolve().parents[1] / "server" / "static" / "app"
"""The built frontend (``npm run build`` in ``frontend/``); the embeds are in ``embed/``."""

_DATA_PREFIX = {"png": "data:image/png;base64,", "json": "data:application/json;base64,"}


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


def _data_url(blob: _Blob) -> str:
    prefix = _DATA_PREFIX.get(blob.ext)
    if prefix is None:
        raise DeepscopeError(f"blob {blob.id} ({blob.ext}) cannot be inlined; only png and json")
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


def report_html(payload: EmbedPayload, title: str = "deepscope report") -> str:
    """One self-contained HTML file that draws `payload` (from `ViewBuffer.payload`) with
    the report entry: the bundle and the payload are inlined, so it opens from ``file://``
    and makes no request."""
    if payload.get("format") != "deepscope-embed":
        raise DeepscopeError("report_html takes an embed payload (ViewBuffer.payload(kind))")
    escaped_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="color-scheme" content="light dark">\n'
        f"<title>{escaped_title}</title>\n"
        '<link rel="icon" href="data:,">\n</head>\n<body>\n<main id="app"></main>\n'
        f'<script type="application/json" id="deepscope-data">{_json_for_html(payload)}</script>\n'
        f'<script type="module">{_script_for_html(report_script())}</script>\n'
        "</body>\n</html>\n"
    )
