"""The ``attention`` view kind: one attention layer (or the rollout) of one input.

An item is a small JSON main blob (``{"tokens": [...]}``, the labels of the key
positions) with `AttentionMeta`, plus array parts joined by ``meta.layer``:

- ``weights``: the (heads, queries, keys) weights, float32 (float16 for large ones), when
  the layer was kept whole (``meta.pooled`` false);
- ``pooled_max`` / ``pooled_mean``: (heads, ⌈queries/block⌉, ⌈keys/block⌉) block-pooled
  maxima and means, and ``top_values`` (float32) / ``top_keys`` (int32): (heads, queries,
  top_k) each query's largest weights and their key positions, when ``meta.pooled`` is
  true (long sequences: `deepscope.attention(..., block=)`);
- ``image``: the input image (PNG) of a vision model whose keys are patches
  (``meta.patchGrid``), drawn under the patch map.

Rollout (and flow, when logged) are items like a layer's with one "head" and
``meta.view`` naming them. ``meta.promptLength`` marks a decoder's prompt: the rows after
it are generated tokens (the panel's generation view); with ``meta.generation`` (from
`attention_generate`) row t is the query that predicted generated token t. Written by
``run.log_attention`` (`deepscope.analysis.attention.show.write_attention`), served by
``/api/views/attention``, drawn by the ``attention`` panel.

Example:
    >>> from deepscope.views import registry
    >>> sorted(registry.get("attention").parts)
    ['image', 'pooled_max', 'pooled_mean', 'top_keys', 'top_values', 'weights']
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, NotRequired, TypedDict

from deepscope.views.registry import Part, PartRef, ViewKind, block_mean, register

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["KIND", "AttentionItem", "AttentionMeta", "AttentionParts", "AttentionView"]


class AttentionMeta(TypedDict):
    """What is logged with each attention layer of one input."""

    layer: str
    view: Literal["layer", "rollout", "flow"]
    index: int
    heads: list[int]
    nHeads: int
    shape: list[int]
    queryStart: int
    tokens: int
    patchGrid: list[int] | None
    pooled: bool
    block: int
    topK: int
    path: str
    format: Literal["json"]
    promptLength: NotRequired[int]
    generation: NotRequired[bool]


class AttentionParts(TypedDict):
    """The arrays of one attention item (null when not logged)."""

    weights: PartRef | None
    pooled_max: PartRef | None
    pooled_mean: PartRef | None
    top_values: PartRef | None
    top_keys: PartRef | None
    image: PartRef | None


class AttentionItem(TypedDict):
    """One attention layer (or the rollout) of one input."""

    id: int
    tag: str
    step: int
    wallTime: float
    format: Literal["json"]
    url: str
    meta: AttentionMeta
    parts: AttentionParts


class AttentionView(TypedDict):
    """``/api/views/attention``: every logged attention item of a run (oldest first)."""

    kind: Literal["attention"]
    run: str
    items: list[AttentionItem]
    skipped: int


TOP_K_MAX = 64
"""Arrays whose last axis is at most this long and much shorter than the one before are the
top-k of each query (``top_values``/``top_keys``): never averaged."""


def _downsample(array: NDArray[Any], max_size: int) -> NDArray[Any]:
    """Block means of weights and pooled matrices; the top-k keys and values of each query
    (positions, and values that belong to them) are served whole."""
    if array.dtype.kind in "iu" or (
        array.ndim >= 2 and array.shape[-1] <= TOP_K_MAX and array.shape[-2] > 4 * array.shape[-1]
    ):
        return array
    return block_mean(array, max_size)


_FLOATS = ("float32", "float16")

KIND = register(
    ViewKind(
        name="attention",
        panel="attention",
        meta=AttentionMeta,
        item=AttentionItem,
        response=AttentionView,
        formats=("json",),
        parts={
            "weights": Part("attention_weights", "array", _FLOATS),
            "pooled_max": Part("attention_pooled_max", "array", _FLOATS),
            "pooled_mean": Part("attention_pooled_mean", "array", _FLOATS),
            "top_values": Part("attention_top_values", "array", _FLOATS),
            "top_keys": Part("attention_top_keys", "array", ("int32",)),
            "image": Part("attention_image", "png"),
        },
        key="layer",
        downsample=_downsample,
    )
)
