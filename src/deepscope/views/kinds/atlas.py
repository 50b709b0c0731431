"""The ``atlas`` view kind: a neuron atlas of one layer (`deepscope.atlas`).

An item is one layer's atlas: a JSON main blob (`AtlasDoc`: per channel, the score of the
optimised image and of each of its top-k dataset examples, by ``meta.measure``: the
channel's spatial ``"mean"`` or ``"max"``) with `AtlasMeta`, plus
two PNG parts joined by ``meta.entry`` (the layer name):

- ``images``: the optimised images, tile ``size`` = [height, width] each, channel c at
  row ``c // columns``, column ``c % columns``;
- ``examples``: the dataset examples, tile ``exampleSize`` each, channel c's block of
  ``topK`` tiles (best first, left to right) at block row ``c // columns``, block column
  ``c % columns`` (absent when no dataset was given).

``Atlas.log`` (``atlas(..., run=run)``, ``run.log_atlas``) writes it through
`deepscope.views.registry.write`; ``/api/views/atlas`` serves it; the frontend draws it
with the ``atlas`` panel, and the graph inspector links a layer's node to it.

Example:
    >>> from deepscope.views import registry
    >>> sorted(registry.get("atlas").parts)
    ['examples', 'images']
"""

from __future__ import annotations

from typing import Literal, TypedDict

from deepscope.views.registry import Part, PartRef, ViewKind, register

__all__ = ["KIND", "AtlasChannel", "AtlasDoc", "AtlasItem", "AtlasMeta", "AtlasParts", "AtlasView"]


class AtlasMeta(TypedDict):
    """What is logged with each layer's atlas."""

    entry: str
    layer: str
    channels: int
    topK: int
    size: list[int]
    exampleSize: list[int]
    columns: int
    steps: int
    measure: Literal["mean", "max"]
    format: Literal["json"]


class AtlasChannel(TypedDict):
    """One channel of the main blob: `score` of its optimised image, `values` of its
    examples (best first, null where not finite)."""

    channel: int
    score: float | None
    values: list[float | None]


class AtlasDoc(TypedDict):
    """The main blob of an atlas item (JSON)."""

    channels: list[AtlasChannel]


class AtlasParts(TypedDict):
    """The pictures of one atlas (null when not logged)."""

    images: PartRef | None
    examples: PartRef | None


class AtlasItem(TypedDict):
    """One layer's atlas."""

    id: int
    tag: str
    step: int
    wallTime: float
    format: Literal["json"]
    url: str
    meta: AtlasMeta
    parts: AtlasParts


class AtlasView(TypedDict):
    """``/api/views/atlas``: every logged atlas of a run (oldest first)."""

    kind: Literal["atlas"]
    run: str
    items: list[AtlasItem]
    skipped: int


KIND = register(
    ViewKind(
        name="atlas",
        panel="atlas",
        meta=AtlasMeta,
        item=AtlasItem,
        response=AtlasView,
        formats=("json",),
        parts={"images": Part("atlas_images", "png"), "examples": Part("atlas_examples", "png")},
        key="entry",
    )
)
