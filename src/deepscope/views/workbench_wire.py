"""Wire schemas of the live-model workbench routes (``/api/workbench*``,
`deepscope.server.routes.workbench`); `deepscope.views.wire` lists them with every route.

A view's ``meta`` is open (each view has its own keys: ``layout``/``min``/``max`` for maps,
``target``/``targetName`` for attributions, ``top`` for predictions, ``tokens`` for
attention); its binary parts are fetched by name from ``/api/workbench/part``.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

__all__ = ["WorkbenchInfo", "WorkbenchJobs", "WorkbenchTabs", "WorkbenchView"]


class WorkbenchInput(TypedDict):
    index: int
    label: int | None
    labelName: str | None


class WorkbenchInfo(TypedDict):
    """``/api/workbench``: the served model's inputs and classes."""

    model: str
    inputs: list[WorkbenchInput]
    inputKind: Literal["image", "tokens", "other"]
    classNames: list[str] | None


class WorkbenchTabs(TypedDict):
    """``/api/workbench/tabs``: the views that apply to one graph node."""

    node: str
    module: str | None
    moduleType: str
    activations: bool
    gradients: bool
    gradcam: bool
    saliency: bool
    attention: bool
    units: bool


class WorkbenchView(TypedDict):
    """``/api/workbench/view``: one computed view (its parts by name from ``/part``)."""

    key: str
    view: str
    node: str
    input: int
    meta: dict[str, Any]
    parts: list[str]
    seconds: float


class WorkbenchJob(TypedDict):
    key: str
    label: str
    lane: str
    state: str
    waiters: int
    seconds: float
    progress: float | None
    note: str
    position: int | None


class WorkbenchJobs(TypedDict):
    """``/api/workbench/jobs``: views queued or running, with their progress."""

    jobs: list[WorkbenchJob]
