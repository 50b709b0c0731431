"""`Workbench`: the live model as the server sees it (`server.routes.workbench.WorkbenchSource`).

It owns the `Scheduler` with two lanes: ``fast`` (the user's own model: feature maps,
gradients, Grad-CAM, saliency, attention, predictions) and ``slow`` (a deep copy of the
model, made on the first slow view: the unit table over every input), so the slow view
never holds up a click. Request keys are ``view|node|input|target``.

While a view computes, every module of its lane's model carries a forward pre-hook that
calls `deepscope.workbench.jobs.checkpoint`, so a view whose requests all went away stops
before the next layer runs (each attribution step and each batch is a forward pass).
"""

from __future__ import annotations

import copy
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from deepscope.errors import DeepscopeError
from deepscope.graph.ir import Graph
from deepscope.workbench.jobs import Job, Outcome, Progress, Scheduler, checkpoint
from deepscope.workbench.live import ATTENTION_TYPES, VIEWS, LiveModel, NodeMap

__all__ = ["Workbench"]

THUMB_MAX = 256


def _checkpoint_hook(module: nn.Module, args: Any) -> None:
    checkpoint()


@contextmanager
def checkpoints(model: nn.Module) -> Iterator[None]:
    """A cancellation checkpoint before every module call of `model` while inside."""
    handles = [m.register_forward_pre_hook(_checkpoint_hook) for m in model.modules()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


class _LazyLane:
    """A lane context made on first use (the slow lane's model copy)."""

    def __init__(self, make: Any) -> None:
        self._make = make
        self._value: LiveModel | None = None
        self._lock = threading.Lock()

    def get(self) -> LiveModel:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value


class Workbench:
    """The views of `model` on `inputs` (a batch tensor), keyed by the nodes of `graph`."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, graph: Graph, *,
                 labels: list[int] | None = None, classes: list[str] | None = None,
                 name: str = "") -> None:  # fmt: skip
        self.model = model
        self.inputs = inputs
        self.graph = graph
        self.labels = labels
        self.classes = classes
        self.name = name or type(model).__name__
        self.nodes = NodeMap(graph, model)
        fast = LiveModel(model, inputs, self.nodes, classes=classes)

        def slow() -> LiveModel:
            try:
                replica = copy.deepcopy(model)
            except Exception:  # noqa: BLE001 - a model that cannot be copied shares the lock
                return fast
            return LiveModel(replica, inputs, self.nodes, classes=classes)

        self._slow = _LazyLane(slow)
        self._fast = fast
        self.scheduler = Scheduler({"fast": fast, "slow": self._slow})
        self._thumbs: dict[int, bytes | None] = {}
        self._modules = dict(model.named_modules())

    # ---- the protocol the server calls -------------------------------------------------

    def info(self) -> dict[str, Any]:
        """`WorkbenchInfo`: inputs (label, label name), classes and the input kind."""
        n = len(self.inputs)
        rows = []
        for i in range(n):
            label = self.labels[i] if self.labels is not None and i < len(self.labels) else None
            rows.append({"index": i, "label": label,
                         "labelName": self._class_name(label) if label is not None else None})  # fmt: skip
        return {"model": self.name, "inputs": rows, "inputKind": self._kind(),
                "classNames": list(self.classes) if self.classes is not None else None}  # fmt: skip

    def input_png(self, index: int) -> bytes | None:
        """Input `index` as a PNG (None for inputs that are not images)."""
        if index in self._thumbs:
            return self._thumbs[index]
        png = None
        if self._kind() == "image" and 0 <= index < len(self.inputs):
            from PIL import Image

            from deepscope.render.overlay import to_rgb_array

            rgb = to_rgb_array(self.inputs[index].detach().float().cpu())
            img = Image.fromarray(rgb)
            if max(img.size) < 96:  # small inputs drawn crisp and visible
                k = -(-96 // max(img.size))
                img = img.resize((img.width * k, img.height * k), Image.Resampling.NEAREST)
            img.thumbnail((THUMB_MAX, THUMB_MAX))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            png = buf.getvalue()
        self._thumbs[index] = png
        return png

    def tabs(self, node: str) -> dict[str, Any]:
        """`WorkbenchTabs`: the views that apply to `node`."""
        info = self.nodes.info(node)
        module = info.module
        live = module is not None
        mod = self._modules.get(module) if module is not None else None
        mtype = type(mod).__name__ if mod is not None else info.module_type
        is_attention = mtype in ATTENTION_TYPES or mtype.endswith("Attention")
        return {"node": node, "module": module, "moduleType": mtype,
                "activations": live, "gradients": live,
                "gradcam": live and info.out_ndim == 4 and self._kind() == "image",
                "saliency": self._kind() in ("image", "tokens"),
                "attention": live and is_attention, "units": live}  # fmt: skip

    def submit(self, view: str, node: str, index: int, target: int | None) -> Job:
        """The job of one view (cached, joined or queued); `DeepscopeError` for bad input."""
        entry = VIEWS.get(view)
        if entry is None:
            raise DeepscopeError(f"unknown view {view[:40]!r}; one of {', '.join(VIEWS)}")
        lane, fn, takes_node, takes_target = entry
        if not 0 <= index < len(self.inputs):
            raise DeepscopeError(f"input {index} is out of range (0..{len(self.inputs) - 1})")
        args: list[Any] = []
        if takes_node:
            self.nodes.info(node)  # unknown ids are a 404-ish error now, not in a job
            args.append(node)
        else:
            node = ""
        if view != "units":
            args.append(index)
        else:
            index = 0
        if takes_target:
            args.append(target)
        else:
            target = None
        key = f"{view}|{node}|{index}|{'pred' if target is None else target}"

        def compute(ctx: Any, progress: Progress) -> Outcome:
            live = ctx.get() if isinstance(ctx, _LazyLane) else ctx
            with checkpoints(live.model):
                out: Outcome = fn(live, progress, *args)
            return out

        return self.scheduler.submit(key, lane, compute, label=f"{view} {node}".strip())

    def finished(self, key: str) -> Job | None:
        """The finished job of `key` (its parts are served by key)."""
        return self.scheduler.get(key)

    def jobs(self) -> list[dict[str, Any]]:
        """Queued and running views."""
        return self.scheduler.jobs()

    # ---- helpers -----------------------------------------------------------------------

    def _kind(self) -> str:
        x = self.inputs
        if x.dtype in (torch.int32, torch.int64, torch.long) and x.ndim == 2:
            return "tokens"
        if x.ndim == 4 and x.shape[1] in (1, 3):
            return "image"
        if x.ndim == 4 and x.shape[-1] in (1, 3):
            return "image"
        return "other"

    def _class_name(self, k: int) -> str:
        return self._fast.class_name(int(k))

    def close(self) -> None:
        """Stop the worker threads."""
        self.scheduler.close()


def as_batch(inputs: Any) -> torch.Tensor:
    """A batch tensor from a tensor, a numpy array or a list of same-shaped items."""
    if isinstance(inputs, torch.Tensor):
        return inputs
    if isinstance(inputs, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(inputs))
    if isinstance(inputs, (list, tuple)) and inputs:
        return torch.stack([as_batch(x) for x in inputs])
    raise DeepscopeError(
        f"inputs must be a batch tensor or array (N, ...), not {type(inputs).__name__}"
    )
