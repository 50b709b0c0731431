"""The ``attribution`` view kind: the worked example of adding a kind.

An item is one input's map from one method: a main blob (a PNG overlay for images, or the
per-token JSON for text) with `AttributionMeta`, plus two parts joined by
``meta.input_index``: ``input`` (the input image, PNG) and ``heat`` (the raw 2-D map, or
the per-token scores, as a float32 array envelope). ``AttributionResult.log`` writes it
through `deepscope.views.registry.write`; ``/api/views/attribution`` serves it; the
frontend draws it with the ``attribution`` panel.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from deepscope.views.registry import Part, PartRef, ViewKind, register
from deepscope.views.schema import open_keys

__all__ = ["KIND", "AttributionItem", "AttributionMeta", "AttributionParts", "AttributionView"]


@open_keys
class AttributionMeta(TypedDict):
    """What is logged with each attribution map (plus any keys of the result's own meta)."""

    method: str
    target: Any
    layer: str | None
    input_index: int
    batch: int
    format: Literal["png", "json"]
    label: NotRequired[int]
    pred: NotRequired[int]
    heatMin: NotRequired[float]
    heatMax: NotRequired[float]
    cmap: NotRequired[str]
    alpha: NotRequired[float]
    colorbar: NotRequired[list[str]]
    layout: NotRequired[str]
    warning: NotRequired[str]
    n: NotRequired[int]
    sigma: NotRequired[float]


class AttributionParts(TypedDict):
    """The companions of one attribution map (null when not logged)."""

    input: PartRef | None
    heat: PartRef | None


class AttributionItem(TypedDict):
    """One input's attribution map from one method."""

    id: int
    tag: str
    step: int
    wallTime: float
    format: Literal["png", "json"]
    url: str
    meta: AttributionMeta
    parts: AttributionParts


class AttributionView(TypedDict):
    """``/api/views/attribution``: every attribution item of a run (oldest first)."""

    kind: Literal["attribution"]
    run: str
    items: list[AttributionItem]
    skipped: int


KIND = register(
    ViewKind(
        name="attribution",
        panel="attribution",
        meta=AttributionMeta,
        item=AttributionItem,
        response=AttributionView,
        formats=("png", "json"),
        parts={
            "input": Part("attribution_input", "png"),
            "heat": Part("attribution_heat", "array", ("float32",)),
        },
        key="input_index",
    )
)
