"""Shared helpers of the blob-backed panels (images, text, graphs, attributions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from deepscope.errors import NotFoundError
from deepscope.server.paths import confine
from deepscope.server.state import ServedRun
from deepscope.store.protocol import BlobInfo

# extension -> content type; anything else is never served (no HTML, SVG or scripts)
CONTENT_TYPES = {
    "png": "image/png",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
}
MAX_TEXT_BYTES = 256 * 1024
MAX_ITEMS = 1000


def blob_url(run: str, blob_id: int) -> str:
    """The dashboard URL of a blob (by id: no path ever travels to or from the client)."""
    return "/api/blob?" + urlencode({"run": run, "id": blob_id})


def blob_file(reader: ServedRun, blob: BlobInfo) -> Path:
    """The blob's file, confined to the run directory by `paths.confine` (a database store
    fetches it into its local cache first: `RunReader.blob_path`)."""
    try:
        return confine(Path(reader.directory), blob.path)
    except NotFoundError:
        reader.blob_path(blob)  # NotFoundError again when the store has no such blob
        return confine(Path(reader.directory), blob.path)


def content_type(path: Path) -> str:
    """The content type of an allowed blob file; `NotFoundError` for any other kind."""
    kind = CONTENT_TYPES.get(path.suffix.lower().lstrip("."))
    if kind is None:
        raise NotFoundError("this blob type is not served by the dashboard")
    return kind


def read_text(reader: ServedRun, blob: BlobInfo, limit: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of a blob, cut at `limit` bytes."""
    path = blob_file(reader, blob)
    with path.open("rb") as f:
        data = f.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... cut]" if len(data) > limit else "")


def blob_item(run: str, blob: BlobInfo) -> dict[str, Any]:
    """``{"id", "step", "wallTime", "meta", "url"}`` for a listed blob."""
    return {
        "id": blob.id,
        "step": blob.step,
        "wallTime": blob.wall_time,
        "meta": blob.meta,
        "url": blob_url(run, blob.id),
    }
