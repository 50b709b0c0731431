"""Which layer to explain when none is given: the embedding that reads token ids, the layer a
CAM should hook, and whether a model lays images out channels-last (Keras).

The CAM layer is the last module with a spatial output — (B, C, H, W), (B, H, W, C) for
channels-last models, a (B, N, C) token grid for ViTs, (B, T, C) for token-id inputs — whose
grid positions receive gradient from the prediction. Only activations count: a layer whose
output's first axis is not the batch, or a `torch.nn.utils.parametrize` module (its output is
a weight), is skipped. A ViT's final norm fails that test
(only the CLS token reaches the head); for token layouts the last normalisation layer that
passes it is preferred (the last block's input norm, as pytorch-grad-cam advises). Found
with one forward and backward of the first input; remembered per model and input shape.
"""

from __future__ import annotations

import math
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from deepscope.analysis.attribution.outputs import OutputSelector, class_view, select_output
from deepscope.capture.hooks import HookSet, _is_keras, _replace_first, first_tensor, named_layers

_CAM: weakref.WeakKeyDictionary[nn.Module, dict[Any, list[str]]] = weakref.WeakKeyDictionary()
_EMBEDDING: weakref.WeakKeyDictionary[nn.Module, dict[Any, str]] = weakref.WeakKeyDictionary()


def is_token_ids(inputs: torch.Tensor) -> bool:
    """True for integer inputs (token ids), which carry no gradient of their own."""
    return not (inputs.is_floating_point() or inputs.is_complex() or inputs.dtype == torch.bool)


def channels_last(model: nn.Module) -> bool:
    """True when `model` is a Keras model whose images are (B, H, W, C): the `data_format`
    of its first layer that has one, else Keras' `image_data_format()`."""
    if not _is_keras(model):
        return False
    for _, layer in named_layers(model):
        fmt = getattr(layer, "data_format", None)
        if fmt in ("channels_last", "channels_first"):
            return bool(fmt == "channels_last")
    keras = sys.modules.get("keras")
    return keras is None or keras.config.image_data_format() == "channels_last"


def _grid_side(n: int) -> int | None:
    side = math.isqrt(n)
    return side if side > 1 and side * side == n else None


def token_positions(shape: tuple[int, ...], length: int, last: bool) -> int | None:
    """For token-id inputs of `length`: the axis of a 3-D activation that runs over positions
    (1 for (B, T, C), 2 for (B, C, T)); channels-last models (Keras) may shorten it (Conv1D)."""
    if len(shape) != 3:
        return None
    if shape[1] == length:
        return 1
    if shape[2] == length:
        return 2
    return 1 if last and shape[1] > 1 else None


def image_spatial(shape: tuple[int, ...], last: bool) -> bool:
    """A (B, C, H, W) — (B, H, W, C) when `last` — map with H·W > 1, or a square token grid."""
    if len(shape) == 4:
        return (shape[1] * shape[2] if last else shape[2] * shape[3]) > 1
    if len(shape) == 3:
        return _grid_side(shape[1]) is not None or _grid_side(shape[1] - 1) is not None
    return False


def _grid_positions(grad: torch.Tensor, tokens: int | None, last: bool) -> int:
    """How many positions of the grid a CAM uses carry gradient (CLS dropped on ViT grids)."""
    g = grad.detach().abs()
    if tokens is not None:
        axis = token_positions(tuple(g.shape), tokens, last)
        per = g.sum(dim=2 if axis == 1 else 1)
    elif g.ndim == 4:
        per = g.sum(dim=3 if last else 1).flatten(1)
    else:
        n = g.shape[1]
        side = _grid_side(n) or _grid_side(n - 1) or 0
        per = g[:, n - side * side :].sum(dim=2)
    return int((per > 0).sum())


@dataclass
class _Seen:
    name: str
    module: nn.Module
    shape: tuple[int, ...]
    calls: int
    probe: torch.Tensor


def _is_norm(module: nn.Module) -> bool:
    return "Norm" in type(module).__name__


def _is_parametrization(name: str) -> bool:
    """A module of `torch.nn.utils.parametrize` (weight norm...): its output is a weight."""
    parts = name.split(".")
    return "parametrizations" in parts or "parametrizations" == parts[-1]


def cam_layers(model: nn.Module, inputs: torch.Tensor, output: OutputSelector = None) -> list[str]:
    """Candidate CAM layers, best first (see the module docstring); empty if none qualifies."""
    tokens = inputs.shape[1] if is_token_ids(inputs) and inputs.ndim == 2 else None
    key = (tuple(inputs.shape[1:]), tokens is None, _selector_key(output))
    cached = _CAM.get(model, {}).get(key)
    if cached is not None:
        return cached
    last = channels_last(model)
    batch = 1  # the search runs the first input alone
    seen: dict[int, _Seen] = {}
    order: list[int] = []

    def record(name: str) -> Callable[[nn.Module, tuple[Any, ...], Any], Any]:
        def hook(module: nn.Module, _i: tuple[Any, ...], out: Any) -> Any:
            entry = seen.get(id(module))
            if entry is not None:
                entry.calls += 1
                return None
            try:
                value = first_tensor(out)
            except TypeError:
                return None
            shape = tuple(value.shape)
            if not shape or shape[0] != batch:  # a weight (parametrization), not an activation
                return None
            fits = (
                token_positions(shape, tokens, last) is not None
                if tokens is not None
                else image_spatial(shape, last)
            )
            if not fits or not value.is_floating_point():
                return None
            probe = torch.zeros_like(value, requires_grad=True)
            seen[id(module)] = _Seen(name, module, shape, 1, probe)
            order.append(id(module))
            return _replace_first(out, value + probe)

        return hook

    with HookSet() as hooks, torch.enable_grad():
        for name, module in named_layers(model):
            if not _is_parametrization(name):
                hooks.forward(module, record(name))
        scores = class_view(select_output(model(inputs[:1]), output))
    usable = [seen[i] for i in order if seen[i].calls == 1]
    if not usable or not scores.requires_grad:
        return []
    score = scores[0, scores[0].detach().argmax()]
    grads = torch.autograd.grad(score, [s.probe for s in usable], allow_unused=True)
    passing = [
        s
        for s, g in reversed(list(zip(usable, grads, strict=True)))
        if g is not None and _grid_positions(g, tokens, last) >= 2
    ]
    if passing and len(passing[0].shape) == 3:
        norms = [s for s in passing if _is_norm(s.module)]
        if norms:
            passing.remove(norms[0])
            passing.insert(0, norms[0])
    ranked = [s.name for s in passing]
    _CAM.setdefault(model, {})[key] = ranked
    return ranked


def find_cam_layer(model: nn.Module, inputs: torch.Tensor, output: OutputSelector = None) -> str:
    """Name of the layer a CAM hooks when none is given (see the module docstring)."""
    ranked = cam_layers(model, inputs, output)
    if not ranked:
        raise ValueError(
            "no layer with a spatial output — (B, C, H, W), (B, H, W, C), a (B, N, C) token "
            "grid, or (B, T, C) for token ids — whose positions get gradient from the output; "
            "pass layer= explicitly"
        )
    return ranked[0]


def embedding_layer(model: nn.Module, ids: torch.Tensor) -> tuple[nn.Module, str]:
    """The first layer to finish that reads the token ids `ids` and returns one float vector
    per token (nn.Embedding, BERT's `word_embeddings`, Keras `Embedding`)."""
    key = tuple(ids.shape[1:])
    layers = dict(named_layers(model))
    name = _EMBEDDING.get(model, {}).get(key)
    if name is None:
        name = _search_embedding(model, ids[:1], layers)
        _EMBEDDING.setdefault(model, {})[key] = name
    return layers[name], name


def _search_embedding(model: nn.Module, ids: torch.Tensor, layers: dict[str, nn.Module]) -> str:
    found: list[str] = []

    def record(name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            if found or not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return
            if out.ndim < 3 or tuple(out.shape[:2]) != tuple(ids.shape):
                return
            for given in (*args, *kwargs.values()):
                if isinstance(given, torch.Tensor) and given.shape == ids.shape:
                    if not given.is_floating_point() and torch.equal(given.to(ids), ids):
                        found.append(name)
                        return

        return hook

    with HookSet() as hooks, torch.no_grad():
        for name, module in layers.items():
            hooks.add(module.register_forward_hook(record(name), with_kwargs=True))
        model(ids)
    if not found:
        raise ValueError(
            "integer inputs (token ids) cannot carry gradients and no embedding layer reading "
            "them was found; pass layer= the layer whose output to attribute (e.g. the "
            "embedding), or give the model float inputs"
        )
    return found[0]


def _selector_key(output: OutputSelector) -> Any:
    return output if isinstance(output, (str, int)) or output is None else id(output)
