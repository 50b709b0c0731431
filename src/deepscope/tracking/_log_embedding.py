"""``run.log_embedding``: N points in D dimensions, their columns and thumbnails, stored as
the ``embedding`` blobs of `deepscope.views.kinds.embedding` (never as JSON text).

- `x` (N x D; torch on any device and dtype, numpy, lists) is stored as float16 when
  rounding moves no value by more than `FLOAT16_TOLERANCE` (1%) of its column's standard
  deviation (and nothing overflows), else float32; in row chunks of at most 32 MiB. NaN/Inf rows are kept (the
  projection drops them and counts them).
- `labels` becomes the category column ``label``; `metadata` maps column names to
  sequences of length N: categories (strings, integers, booleans with at most
  `MAX_CATEGORIES` distinct values), numbers (floats, or integers with more distinct
  values) or text. A column of another length is refused here, before anything is stored.
- `images` (N x C x H x W, N x H x W, or N x H x W x C with C = 1, 3, 4) are packed into one
  PNG atlas of at most `MAX_ATLAS` x `MAX_ATLAS` pixels with tiles of at most 32 x 32
  (smaller when N needs it, down to 8 px); when even that is full, the first images that
  fit are kept and a warning says how many.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deepscope.errors import DeepscopeError, require
from deepscope.views import envelope
from deepscope.views.kinds.embedding import (
    BLOB_KIND,
    CHUNK_KIND,
    SPRITE_KIND,
    chunk_rows,
)
from deepscope.views.registry import BlobWriter

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["FLOAT16_TOLERANCE", "MAX_ATLAS", "MAX_CATEGORIES", "log_embedding"]

FLOAT16_TOLERANCE = 1e-2
MAX_CATEGORIES = 1000
MAX_TEXT = 500
MAX_ATLAS = 8192
MAX_TILE = 32
MIN_TILE = 8


def _numpy(values: Any) -> NDArray[Any]:
    import numpy as np

    if hasattr(values, "detach") and hasattr(values, "cpu"):
        t = values.detach().cpu()
        if t.is_floating_point():
            t = t.float()  # bfloat16 has no numpy dtype
        return np.asarray(t.numpy())
    return np.asarray(values)


def _matrix(x: Any) -> NDArray[Any]:
    import numpy as np

    arr = _numpy(x)
    if arr.dtype.kind not in "biuf":
        raise DeepscopeError(f"embedding values must be numbers, not {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        hint = " (flatten with x.reshape(len(x), -1))" if arr.ndim > 2 else ""
        raise DeepscopeError(f"an embedding is an N x D matrix, got shape {arr.shape}{hint}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def choose_dtype(x: NDArray[np.float32]) -> str:
    """``"float16"`` when rounding moves no finite value by more than `FLOAT16_TOLERANCE`
    of its column's standard deviation (distances between points barely change) and nothing
    overflows, else ``"float32"``."""
    import numpy as np

    finite = np.isfinite(x)
    vals = np.where(finite, x, 0.0).astype(np.float32)
    if float(np.abs(vals).max(initial=0.0)) > 60000.0:
        return "float32"
    err = np.abs(vals.astype(np.float16).astype(np.float32) - vals).max(axis=0)
    count = np.maximum(finite.sum(axis=0), 1)
    mean = vals.sum(axis=0, dtype=np.float64) / count
    var = (np.where(finite, vals - mean, 0.0) ** 2).sum(axis=0, dtype=np.float64) / count
    return "float16" if bool((err <= FLOAT16_TOLERANCE * np.sqrt(var)).all()) else "float32"


def encode_column(name: str, values: Any, n: int, *, category: bool = False) -> dict[str, Any]:
    """A column in its wire form (`ProjectorColumns`); `DeepscopeError` unless it has `n`
    values."""
    import numpy as np

    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise DeepscopeError(
            f"column {name!r} must be a sequence of {n} values, not {values!r:.60}"
        )
    arr = _numpy(values) if not isinstance(values, list) else np.asarray(values, dtype=object)
    if arr.ndim != 1 or arr.shape[0] != n:
        got = arr.shape[0] if arr.ndim else 0
        raise DeepscopeError(
            f"column {name!r} has {got if arr.ndim == 1 else arr.shape} values for {n} points; "
            f"give exactly one value per row of x"
        )
    if arr.dtype == object:
        arr = _unbox(arr)
    kind = arr.dtype.kind
    uniques = np.unique(arr) if kind in "biufUS" else None
    if kind == "f" and not category:
        vals = [float(v) if math.isfinite(v) else None for v in arr.tolist()]
        return {"name": name, "type": "number", "values": vals}
    few = uniques is not None and len(uniques) <= MAX_CATEGORIES and (len(uniques) < n or n <= 20)
    if kind in "iu" and not category and not few:
        return {"name": name, "type": "number", "values": [float(v) for v in arr.tolist()]}
    if kind in "biuf" and uniques is not None:
        cats, codes = uniques, np.searchsorted(uniques, arr)
        text = [_fmt(v) for v in cats.tolist()]
        return {"name": name, "type": "category", "categories": text, "codes": codes.tolist()}
    strs = arr.astype(str)
    cats, codes = np.unique(strs, return_inverse=True)
    if category or (len(cats) <= MAX_CATEGORIES and (len(cats) < n or n <= 20)):
        return {"name": name, "type": "category", "categories": [str(c) for c in cats],
                "codes": codes.reshape(-1).tolist()}  # fmt: skip
    return {"name": name, "type": "text", "values": [s[:MAX_TEXT] for s in strs.tolist()]}


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _unbox(arr: NDArray[Any]) -> NDArray[Any]:
    """A typed array from a list of Python values (numbers stay numbers, else strings)."""
    import numpy as np

    items = arr.tolist()
    if all(isinstance(v, bool) for v in items):
        return np.asarray(items, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        return np.asarray(items, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
        return np.asarray(items, dtype=np.float64)
    return np.asarray(["" if v is None else str(v) for v in items], dtype=str)


def _pixels(images: Any, n: int) -> NDArray[np.uint8]:
    """(N, H, W, C) uint8 from N x C x H x W, N x H x W or N x H x W x C."""
    import numpy as np

    arr = _numpy(images)
    if arr.ndim == 3:
        arr = arr[..., None]
    elif arr.ndim == 4 and arr.shape[1] in (1, 3, 4) and arr.shape[3] not in (1, 3, 4):
        arr = arr.transpose(0, 2, 3, 1)
    elif arr.ndim == 4 and arr.shape[1] in (1, 3, 4):
        arr = arr.transpose(0, 2, 3, 1)  # N C H W is the documented layout when ambiguous
    if arr.ndim != 4 or arr.shape[3] not in (1, 3, 4):
        raise DeepscopeError(
            f"images must be N x C x H x W (C = 1, 3 or 4) or N x H x W, got {arr.shape}"
        )
    if arr.shape[0] != n:
        raise DeepscopeError(f"images has {arr.shape[0]} images for {n} points; give one per row")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    f = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(f.min()), float(f.max())
    if arr.dtype.kind == "f" and lo >= 0.0 and hi <= 1.0:
        f = f * 255.0
    elif arr.dtype.kind in "iu" and lo >= 0 and hi <= 255:
        pass
    elif hi > lo:
        f = (f - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


def _tile(h: int, w: int, n: int) -> tuple[int, int, int]:
    """Tile (width, height) and how many tiles fit in the atlas."""
    scale = min(1.0, MAX_TILE / max(h, w))
    while True:
        tw, th = max(1, round(w * scale)), max(1, round(h * scale))
        fit = (MAX_ATLAS // tw) * (MAX_ATLAS // th)
        if fit >= n or max(tw, th) <= MIN_TILE:
            return tw, th, min(n, fit)
        scale *= 0.9


def sprite_atlas(images: Any, n: int) -> tuple[bytes, dict[str, Any]]:
    """The PNG atlas of `images` and its layout ``{"tile": [w, h], "cols", "count"}``."""
    require("PIL", "arrays")
    import numpy as np
    from PIL import Image

    px = _pixels(images, n)
    _, h, w, c = px.shape
    tw, th, count = _tile(h, w, n)
    if count < n:
        warnings.warn(
            f"the sprite atlas holds {count} of {n} thumbnails ({tw}x{th} px each in "
            f"{MAX_ATLAS}x{MAX_ATLAS}); the others have none",
            stacklevel=3,
        )
    cols = min(MAX_ATLAS // tw, max(1, math.ceil(math.sqrt(count))))
    rows = math.ceil(count / cols)
    if rows > MAX_ATLAS // th:
        rows = MAX_ATLAS // th
        cols = math.ceil(count / rows)
    atlas = np.zeros((rows * th, cols * tw, c), np.uint8)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
    for i in range(count):
        tile = px[i]
        if (th, tw) != (h, w):
            img = Image.fromarray(tile[..., 0] if c == 1 else tile, mode)
            tile = np.asarray(img.resize((tw, th), Image.Resampling.BOX)).reshape(th, tw, c)
        r, col = divmod(i, cols)
        atlas[r * th : (r + 1) * th, col * tw : (col + 1) * tw] = tile
    buf = io.BytesIO()
    Image.fromarray(atlas[..., 0] if c == 1 else atlas, mode).save(buf, format="PNG")
    return buf.getvalue(), {"tile": [tw, th], "cols": cols, "count": count}


def log_embedding(
    run: BlobWriter,
    tag: str,
    x: Any,
    labels: Any = None,
    metadata: Mapping[str, Any] | None = None,
    images: Any = None,
    step: int | None = None,
    dtype: str | None = None,
) -> dict[str, Any]:
    """Store one embedding (see the module docstring); returns its stored meta."""
    require("numpy", "arrays")
    import numpy as np

    mat = _matrix(x)
    n, dim = mat.shape
    columns: list[dict[str, Any]] = []
    if labels is not None:
        columns.append(encode_column("label", labels, n, category=True))
    for name, values in (metadata or {}).items():
        if not isinstance(name, str) or not name or len(name) > 200:
            raise DeepscopeError(f"metadata column names are non-empty strings, not {name!r:.60}")
        if name == "label" and labels is not None:
            raise DeepscopeError("metadata has a column 'label' and labels were given; rename one")
        columns.append(encode_column(name, values, n))
    sprite = None if images is None else sprite_atlas(images, n)
    if dtype is None:
        dtype = choose_dtype(mat)
    if dtype not in ("float16", "float32"):
        raise DeepscopeError(f"dtype is 'float16' or 'float32', not {dtype!r}")
    stored = mat.astype(dtype)
    rows = chunk_rows(dim, stored.itemsize)
    chunks = math.ceil(n / rows)
    meta: dict[str, Any] = {
        "n": n,
        "dim": dim,
        "dtype": dtype,
        "chunks": chunks,
        "nonfinite": int(n - np.isfinite(mat).all(axis=1).sum()),
        "columns": [{"name": c["name"], "type": c["type"]} for c in columns],
        "sprite": None if sprite is None else sprite[1],
        "format": "json",
    }
    for i in range(chunks):
        part = envelope.encode(stored[i * rows : (i + 1) * rows], dtype)
        chunk_meta = {"chunk": i, "start": i * rows, "rows": min(rows, n - i * rows)}
        run.log_blob(CHUNK_KIND, tag, part, ext="dsa", meta=chunk_meta, step=step)
    if sprite is not None:
        run.log_blob(SPRITE_KIND, tag, sprite[0], ext="png", meta=sprite[1], step=step)
    doc = json.dumps({"columns": columns}, separators=(",", ":")).encode()
    run.log_blob(BLOB_KIND, tag, doc, ext="json", meta=meta, step=step)
    return meta
