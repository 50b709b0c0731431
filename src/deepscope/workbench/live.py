"""The live model behind `deepscope.explore`: graph node -> module, and one function per view.

Every view calls the public analysis API and nothing else (`deepscope.activations`,
`deepscope.attribute` with ``grad_cam`` / ``saliency``, `deepscope.attention`,
`deepscope.unit_stats`); this module only picks the module, the input and the target and
turns the result into an `Outcome` (JSON meta + numpy arrays / PNG bytes). A `LiveModel` is
one lane's context (`deepscope.workbench.jobs`): its own model object and its own cache of
the last inputs' captured outputs, so a second click on another layer of the same input is
a slice, not a forward pass.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from deepscope.errors import DeepscopeError
from deepscope.graph.ir import Graph
from deepscope.workbench.jobs import Outcome, Progress

__all__ = ["LiveModel", "NodeMap", "VIEWS"]

ATTENTION_TYPES = ("MultiheadAttention",)
TOP_K = 5


@dataclass(frozen=True)
class NodeInfo:
    """What the workbench knows about one graph node."""

    module: str | None  # dotted module name, None for a functional op
    module_type: str
    out_ndim: int  # rank of its first output (0 when unknown)


class NodeMap:
    """Graph node id -> `NodeInfo`: an op node that is a module call (``attrs.moduleType``)
    and a group node (``ns:<namespace>``) both stand for that module; other ops have none."""

    def __init__(self, graph: Graph, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        self.nodes: dict[str, NodeInfo] = {}
        types = graph.meta.get("moduleTypes") or {}
        for node in graph.nodes:
            ns = node.namespace
            mtype = str(node.attrs.get("moduleType") or "") if node.attrs else ""
            name = ns.replace("/", ".") if mtype and ns.replace("/", ".") in modules else None
            ndim = len(node.outputs[0].shape or ()) if node.outputs else 0
            self.nodes[node.id] = NodeInfo(name, mtype, ndim)
        for ns, stats in graph.groups.items():
            name = ns.replace("/", ".")
            if not ns or name not in modules:
                continue
            shapes = stats.output_shapes or []
            ndim = len(shapes[0]) if shapes and shapes[0] is not None else 0
            mtype = str(types.get(ns) or stats.module_type or "")
            self.nodes[f"ns:{ns}"] = NodeInfo(name, mtype, ndim)
        self.module_names = [n for n in dict.fromkeys(i.module for i in self.nodes.values()) if n]

    def info(self, node: str) -> NodeInfo:
        """The node's info; a `DeepscopeError` for an unknown id."""
        hit = self.nodes.get(node)
        if hit is None:
            raise DeepscopeError(f"the graph has no node {node[:80]!r}")
        return hit

    def module(self, node: str) -> str:
        """The module name of `node`; a `DeepscopeError` for a functional op."""
        name = self.info(node).module
        if name is None:
            raise DeepscopeError(
                f"node {node[:80]!r} is a function call, not a module: pick a layer"
            )
        return name


class LiveModel:
    """One lane's model, inputs and per-input capture cache (not thread-safe: one lane)."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor, nodes: NodeMap, *,
                 classes: list[str] | None = None, keep_inputs: int = 4) -> None:  # fmt: skip
        self.model = model
        self.inputs = inputs
        self.nodes = nodes
        self.classes = classes
        self._keep = keep_inputs
        self._acts: OrderedDict[int, Any] = OrderedDict()
        self._logits: dict[int, torch.Tensor] = {}
        self._n_scores: int | None = None  # output size, known after the first forward

    def item(self, index: int) -> torch.Tensor:
        """Input `index` as a batch of one."""
        if not 0 <= index < len(self.inputs):
            raise DeepscopeError(f"input {index} is out of range (0..{len(self.inputs) - 1})")
        return self.inputs[index : index + 1]

    def logits(self, index: int) -> torch.Tensor:
        """The model's output scores for input `index` (one forward pass, cached)."""
        hit = self._logits.get(index)
        if hit is None:
            from deepscope.analysis.attribution.outputs import select_output

            with torch.no_grad():
                out = select_output(self.model(self.item(index)), None)
            hit = out.detach().float().reshape(-1).cpu()
            self._logits[index] = hit
            self._n_scores = hit.numel()
        return hit

    def target(self, index: int, target: int | None) -> int:
        """The class to explain: `target`, or the predicted one when None."""
        if target is None:
            return int(self.logits(index).argmax())
        # a given class needs no forward pass of this input, only the output size
        n = self._n_scores if self._n_scores is not None else self.logits(index).numel()
        if not 0 <= target < n:
            raise DeepscopeError(f"class {target} is out of range (0..{n - 1})")
        return target

    def captured(self, index: int) -> Any:
        """`deepscope.activations` of every module of the graph on input `index` (cached
        for the last few inputs)."""
        hit = self._acts.get(index)
        if hit is not None:
            self._acts.move_to_end(index)
            return hit
        from deepscope.analysis.activations import activations

        acts = activations(self.model, self.item(index), self.nodes.module_names)
        self._acts[index] = acts
        while len(self._acts) > self._keep:
            self._acts.popitem(last=False)
        return acts

    def class_name(self, k: int) -> str:
        if self.classes is not None and 0 <= k < len(self.classes):
            return str(self.classes[k])
        return f"class {k}"


def _output_name(acts: Any, module: str) -> str:
    """The captured name of `module`'s output (its first tensor part, its first call)."""
    layers: list[str] = list(acts.layers)
    if module in layers:
        return module
    for name in layers:
        if name.startswith(module + ":") or name.startswith(module + "@"):
            return name
    raise DeepscopeError(f"layer {module!r} did not run on this input (or output no tensor)")


def _range(arr: np.ndarray) -> tuple[float, float]:
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return 0.0, 0.0
    return float(finite.min()), float(finite.max())


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def predict(ctx: LiveModel, progress: Progress, index: int) -> Outcome:
    """Top-5 classes and softmax scores of input `index`."""
    scores = ctx.logits(index)
    probs = torch.softmax(scores, dim=0) if scores.numel() > 1 else torch.sigmoid(scores)
    k = min(TOP_K, probs.numel())
    top = torch.topk(probs, k)
    rows = [{"class": int(c), "name": ctx.class_name(int(c)), "score": float(p)}
            for p, c in zip(top.values, top.indices, strict=True)]  # fmt: skip
    return Outcome({"input": index, "classes": int(scores.numel()), "top": rows})


def feature_maps(ctx: LiveModel, progress: Progress, node: str, index: int) -> Outcome:
    """The node's output on input `index` in the ``activations`` view kind's layout."""
    from deepscope.views.kinds.activations import item_array

    module = ctx.nodes.module(node)
    progress(None, "forward pass")
    acts = ctx.captured(index)
    name = _output_name(acts, module)
    arr, layout = item_array(acts[name], int(acts.unit_axes.get(name, 1)), 0)
    lo, hi = _range(arr)
    meta = {"layer": name, "module": module, "layout": layout, "shape": list(arr.shape),
            "min": lo, "max": hi, "moduleType": acts.module_types.get(name, "")}  # fmt: skip
    return Outcome(meta, {"maps": arr})


def gradients(ctx: LiveModel, progress: Progress, node: str, index: int,
              target: int | None) -> Outcome:  # fmt: skip
    """d(logit of the class) / d(the node's output) on input `index` (signed)."""
    from deepscope.analysis.attribution import attribute
    from deepscope.views.kinds.activations import item_array

    module = ctx.nodes.module(node)
    cls = ctx.target(index, target)
    progress(None, "backward pass")
    res = attribute(ctx.model, ctx.item(index), cls, method="saliency", layer=module, abs=False)
    grad = res.layer_map if res.layer_map is not None else res.attributions
    if grad.ndim == 3:  # (1, tokens, units): units last
        arr, layout = item_array(grad, 2, 0)
    else:
        arr, layout = item_array(grad, 1, 0)
    lo, hi = _range(arr)
    bound = max(abs(lo), abs(hi))
    meta = {"layer": module, "layout": layout, "shape": list(arr.shape), "min": lo, "max": hi,
            "bound": bound, "target": cls, "targetName": ctx.class_name(cls)}  # fmt: skip
    return Outcome(meta, {"maps": arr})


def _attribution(ctx: LiveModel, index: int, target: int | None, method: str,
                 layer: str | None) -> Outcome:  # fmt: skip
    from deepscope.analysis.attribution import attribute

    cls = ctx.target(index, target)
    res = attribute(ctx.model, ctx.item(index), cls, method=method, layer=layer)
    heat = np.ascontiguousarray(res.normalized[0], dtype=np.float32)
    meta: dict[str, Any] = {"method": method, "layer": res.layer, "target": cls,
                            "targetName": ctx.class_name(cls), "shape": list(heat.shape)}  # fmt: skip
    parts: dict[str, Any] = {"heat": heat}
    if res.is_tokens:
        meta["tokens"] = [t for t, _ in res.token_scores(0)]
    else:
        parts["image"] = _png(res.overlay(index=0))
    return Outcome(meta, parts)


def grad_cam(ctx: LiveModel, progress: Progress, node: str, index: int,
             target: int | None) -> Outcome:  # fmt: skip
    """Grad-CAM at the node's layer, as `deepscope.attribute(..., "grad_cam", layer)`."""
    module = ctx.nodes.module(node)
    progress(None, "Grad-CAM")
    return _attribution(ctx, index, target, "grad_cam", module)


def saliency(ctx: LiveModel, progress: Progress, index: int, target: int | None) -> Outcome:
    """Input saliency for the class (the node plays no part: one per input and class)."""
    progress(None, "saliency")
    return _attribution(ctx, index, target, "saliency", None)


def attention_heads(ctx: LiveModel, progress: Progress, node: str, index: int) -> Outcome:
    """Per-head attention weights of the node's attention module on input `index`."""
    from deepscope.analysis.attention import attention

    module = ctx.nodes.module(node)
    progress(None, "attention")
    att = attention(ctx.model, ctx.item(index), layers=[module])
    if not att.layers:
        raise DeepscopeError(f"{module!r} recorded no attention weights on this input")
    layer = att.layers[0]
    weights = np.ascontiguousarray(att[layer].detach().float().cpu().numpy(), dtype=np.float32)
    meta = {"layer": layer, "heads": [int(h) for h in att.heads.get(layer, [])] or
            list(range(weights.shape[0])), "tokens": list(att.tokens),
            "shape": list(weights.shape)}  # fmt: skip
    return Outcome(meta, {"weights": weights})


def units(ctx: LiveModel, progress: Progress, node: str) -> Outcome:
    """Per-unit mean, std, max and fraction of zeros of the node's output over every input
    (`deepscope.unit_stats`, streamed in batches; progress counts the batches)."""
    from deepscope.analysis.activations import unit_stats

    module = ctx.nodes.module(node)
    n = len(ctx.inputs)
    size = 16
    batches = [ctx.inputs[i : i + size] for i in range(0, n, size)]

    def counted() -> Any:
        for k, batch in enumerate(batches):
            progress(k / len(batches), f"batch {k + 1} of {len(batches)}")
            yield batch

    stats = unit_stats(ctx.model, counted(), [module], top_k=1, progress=False)
    if not stats.layers:
        raise DeepscopeError(f"{module!r} produced no unit statistics")
    table = stats[stats.layers[0]]
    cols = {k: [float(v) if np.isfinite(v) else None
                for v in getattr(table, k).detach().float().cpu().numpy().ravel()]
            for k in ("mean", "std", "max", "zero_fraction")}  # fmt: skip
    return Outcome({"layer": stats.layers[0], "inputs": n, "mean": cols["mean"],
                    "std": cols["std"], "max": cols["max"],
                    "zeroFraction": cols["zero_fraction"]})  # fmt: skip


# view name -> (lane, function, takes a node, takes a target)
VIEWS: dict[str, tuple[str, Any, bool, bool]] = {
    "predict": ("fast", predict, False, False),
    "activations": ("fast", feature_maps, True, False),
    "gradients": ("fast", gradients, True, True),
    "gradcam": ("fast", grad_cam, True, True),
    "saliency": ("fast", saliency, False, True),
    "attention": ("fast", attention_heads, True, False),
    "units": ("slow", units, True, False),
}
