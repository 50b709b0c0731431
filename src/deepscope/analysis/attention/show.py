"""From an `Attention` result to every surface: the ``attention`` view kind
(`deepscope.views.kinds.attention`), written into a run by `write_attention` (what
``run.log_attention`` calls), the same items as one dashboard snapshot with their arrays
inlined (`snapshot`), one self-contained HTML file (`html`: ``result.save("a.html")``), the
HTML repr (`repr_html`: ``result._repr_html_()``) and the notebook widget (`show`:
``result.show()``), all drawn by the dashboard's Attention panel component.

What is stored per layer: the whole (heads, queries, keys) weights up to
`MAX_FULL_VALUES` numbers (float16 above `FLOAT16_ABOVE`); a larger layer, or one captured
with ``block=``, as block-pooled max/mean matrices plus the top-k keys of every query.

Example:
    >>> a = deepscope.attention(model, x)                    # doctest: +SKIP
    >>> a.save("attention.html"); a.save("layer0.png")       # doctest: +SKIP
    >>> run.log_attention("attn", a, step=100)               # doctest: +SKIP
"""

from __future__ import annotations

import html as html_lib
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepscope.analysis.attention.pooling import Pooled, Pooler
from deepscope.errors import DeepscopeError
from deepscope.views import embed, registry
from deepscope.views.registry import BlobWriter

if TYPE_CHECKING:
    from deepscope.analysis.attention.result import Attention

__all__ = [
    "FLOAT16_ABOVE",
    "MAX_FULL_VALUES",
    "html",
    "repr_html",
    "save",
    "show",
    "snapshot",
    "write_attention",
]

MAX_FULL_VALUES = 4 * 1024 * 1024
"""A layer's weights are stored whole up to this many numbers (16 MiB as float32), else
block-pooled (`POOLED_SIDE` blocks a side) with the top-`AUTO_TOP_K` keys per query."""
FLOAT16_ABOVE = 1024 * 1024
"""Whole weights of more numbers than this are stored as float16 (±0.0005 at 1.0)."""
POOLED_SIDE = 256
AUTO_TOP_K = 8
MAX_INLINE_BYTES = 48 * 1024 * 1024
"""The largest snapshot `snapshot` inlines (a notebook cell or an HTML file)."""


def _png(image: Any) -> bytes:
    """PNG bytes of a PIL image, an (H, W[, C]) array or a (C, H, W) tensor (floats in
    [0, 1] or [0, 255])."""
    from PIL import Image

    if isinstance(image, Image.Image):
        pil = image.convert("RGB")
    else:
        arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
        if arr.ndim == 4 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = np.moveaxis(arr, 0, -1)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            raise DeepscopeError(f"image= must be an image (H×W, H×W×C or C×H×W), not {arr.shape}")
        if arr.dtype != np.uint8:
            arr = arr.astype(np.float64)
            scale = 255.0 if np.nanmax(arr) <= 1.0 + 1e-6 else 1.0
            arr = np.clip(np.nan_to_num(arr) * scale, 0, 255).round().astype(np.uint8)
        pil = Image.fromarray(arr[..., :3] if arr.ndim == 3 else arr).convert("RGB")
    out = io.BytesIO()
    pil.save(out, format="PNG")
    return out.getvalue()


def _pool(w: torch.Tensor) -> Pooled:
    block = max(1, math.ceil(max(w.shape[1], w.shape[2]) / POOLED_SIDE))
    pooler = Pooler(w.shape[0], w.shape[1], w.shape[2], block, AUTO_TOP_K)
    pooler.feed_all(w)
    return pooler.result()


def _layer_parts(
    w: torch.Tensor | None, pooled: Pooled | None, max_values: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(meta fields, array parts) of one layer's weights or pooled view."""
    if w is not None and w.numel() > max_values:
        pooled = _pool(w)
    if pooled is not None:
        fields = {"pooled": True, "block": pooled.block, "topK": int(pooled.top_values.shape[-1]),
                  "shape": [int(n) for n in pooled.shape]}  # fmt: skip
        parts = {
            "pooled_max": pooled.max.numpy().astype(np.float32),
            "pooled_mean": pooled.mean.numpy().astype(np.float32),
            "top_values": pooled.top_values.numpy().astype(np.float32),
            "top_keys": pooled.top_keys.numpy().astype(np.int32),
        }
        return fields, parts
    assert w is not None
    arr = w.detach().cpu().float().numpy()
    dtype = np.float16 if arr.size > FLOAT16_ABOVE else np.float32
    fields = {"pooled": False, "block": 0, "topK": 0, "shape": [int(n) for n in arr.shape]}
    return fields, {"weights": arr.astype(dtype)}


def _derived(result: Attention, which: str) -> torch.Tensor | None:
    """Rollout (or flow) over every layer, or None where it does not apply (pooled layers,
    a query subset, cross-attention shapes, flow over too many tokens)."""
    if result.pooled or len(result.weights) != len(result.heads):
        return None
    try:
        if which == "rollout":
            return result.rollout()
        flow = getattr(result, "flow", None)
        return None if flow is None else torch.as_tensor(flow())
    except DeepscopeError:
        return None


def write_attention(
    writer: BlobWriter,
    tag: str,
    result: Attention,
    step: int | None = None,
    *,
    layers: list[str] | None = None,
    image: Any = None,
    rollout: bool = True,
    flow: bool = False,
    prompt_length: int | None = None,
    max_values: int = MAX_FULL_VALUES,
) -> int:
    """Log `result` as ``attention`` items (one per layer in `layers`, default all, plus
    the rollout when it applies and `rollout`, plus attention flow when `flow`); return
    how many were written. `image`: the input image of a vision model (drawn under its
    patch map). `prompt_length`: a decoder's prompt length (later rows are generated
    tokens; default ``result.meta["prompt_length"]``)."""
    names = result.layers if layers is None else [result._layer(n) for n in layers]
    meta = result.meta
    prompt = prompt_length if prompt_length is not None else meta.get("prompt_length")
    base: dict[str, Any] = {
        "index": int(meta.get("item", 0)),
        "queryStart": int(result.queries.start),
        "tokens": len(result.tokens),
        "patchGrid": list(result.patch_grid) if result.patch_grid else None,
        "path": str(meta.get("path", "")),
    }
    if prompt is not None:
        base["promptLength"] = int(prompt)
    if meta.get("generation"):
        base["generation"] = True
    doc = json.dumps({"tokens": list(result.tokens)}).encode()
    extra = {"image": _png(image)} if image is not None else {}
    n_heads = meta.get("n_heads", {})
    items: list[tuple[str, str, list[int], int, torch.Tensor | None, Pooled | None]] = [
        (n, "layer", list(result.heads[n]), int(n_heads.get(n, len(result.heads[n]))),
         result.weights.get(n), result.pooled.get(n))
        for n in names
    ]  # fmt: skip
    for which, wanted in (("rollout", rollout), ("flow", flow)):
        derived = _derived(result, which) if wanted else None
        if derived is not None:
            items.append((which, which, [0], 1, derived.to(torch.float32)[None], None))
    for name, view, heads, total, w, pooled in items:
        fields, parts = _layer_parts(w, pooled, max_values)
        item_meta = {**base, **fields, "layer": name, "view": view, "heads": heads,
                     "nHeads": total}  # fmt: skip
        registry.write(writer, "attention", tag, doc, ext="json", meta=item_meta,
                       parts={**parts, **extra}, step=step)  # fmt: skip
    return len(items)


def snapshot(result: Attention, name: str = "attention", **options: Any) -> embed.Snapshot:
    """`result` as a dashboard snapshot (`deepscope.views.embed`): the ``attention`` items
    `write_attention` logs, every blob inlined (arrays larger than
    `embed.ARRAY_MAX_SIZE` a side block-averaged; top-k arrays never)."""
    buffer = embed.ViewBuffer(name)
    write_attention(buffer, "attention", result, 0, **options)
    snap = buffer.snapshot("attention")
    size = sum(len(v) for v in snap["blobs"].values())
    if size > MAX_INLINE_BYTES:
        raise DeepscopeError(
            f"this attention view is {size / 2**20:.0f} MiB inlined (more than "
            f"{MAX_INLINE_BYTES // 2**20} MiB): pass layers=[...] or capture with block=, or "
            "log it into a run (run.log_attention) and open the dashboard"
        )
    return snap


def html(result: Attention, title: str = "deepscope attention", **options: Any) -> str:
    """One self-contained HTML file drawing `result` in the Attention panel (no network)."""
    return embed.report_html(snapshot(result, **options), title=title)


def repr_html(result: Attention, height: int = 720, **options: Any) -> str:
    """An ``<iframe srcdoc>`` (scripts only, no same-origin access) holding `html`."""
    doc = html_lib.escape(html(result, **options), quote=True)
    return (f'<iframe srcdoc="{doc}" sandbox="allow-scripts" title="deepscope attention" '
            f'style="width:100%;height:{int(height)}px;border:0"></iframe>')  # fmt: skip


def show(result: Attention, layer: str | int = 0, head: int | None = None) -> Any:
    """In IPython: the Attention panel as a notebook widget (`deepscope.show`); elsewhere
    the heatmap of `layer` (head `head`, or the heads fused) in the system image viewer."""
    try:
        from IPython import get_ipython
    except ImportError:
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is not None and get_ipython() is not None:
        from deepscope.notebook.show import show as show_result

        return show_result(result)
    result.picture(layer, head).show()
    return None


def save(
    result: Attention, path: str | Path, layer: str | int = 0, head: int | None = None
) -> Path:
    """``.html``/``.htm``: the interactive view (`html`); anything else: the PNG heatmap of
    `layer` (head `head`, or the heads fused). Returns the path."""
    path = Path(path)
    if path.suffix.lower() in (".html", ".htm"):
        path.write_text(html(result), encoding="utf-8")
        return path
    return result.picture(layer, head).save(path)
