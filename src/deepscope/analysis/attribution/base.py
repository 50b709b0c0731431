"""The attribution family's base: one verb, `attribute(inputs, target)`, and target handling.

A target says which output to explain: an int (one class for every input), a sequence or
tensor of class indices (one per input), a callable on the model output returning one score
per input, or None (each input's predicted class).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
from torch import nn

from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import find_module, first_tensor, forward_from_layer

Target = Union[int, Sequence[int], torch.Tensor, Callable[[torch.Tensor], torch.Tensor], None]  # noqa: UP007


def class_indices(target: Target, batch: int, classes: int) -> torch.Tensor:
    """Validated class index per input (LongTensor (batch,), on the CPU) for an int/sequence target."""
    if isinstance(target, int):
        index = torch.full((batch,), target, dtype=torch.long)
    else:
        index = torch.as_tensor(target, dtype=torch.long).reshape(-1).cpu()
        if index.numel() == 1:
            index = index.expand(batch)
        if index.numel() != batch:
            raise ValueError(f"got {index.numel()} targets for {batch} inputs")
    bad = (index < 0) | (index >= classes)
    if bool(bad.any()):
        raise ValueError(
            f"target index {int(index[bad][0])} out of range for a model with {classes} outputs"
        )
    return index


def _check_2d(output: torch.Tensor) -> None:
    if output.ndim != 2:
        raise ValueError(
            f"class-index targets need a (batch, classes) output, got shape {tuple(output.shape)};"
            " pass a callable target returning one score per input"
        )


def resolve_target(output: torch.Tensor, target: Target) -> Target:
    """Make a None target explicit (each input's predicted class) and validate indices.

    Methods that run the model on tiled or perturbed copies call this on the plain output
    first, so "predicted class" means the prediction on the real input.
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        return target
    _check_2d(output)
    if target is None:
        return output.detach().argmax(dim=1).cpu()
    return class_indices(target, output.shape[0], output.shape[1])


def target_scores(
    output: torch.Tensor, target: Target, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """One score per output row. `rows[i]` is the input that row i came from (default: i)."""
    if callable(target) and not isinstance(target, torch.Tensor):
        scores = target(output)
        if scores.ndim != 1 or scores.shape[0] != output.shape[0]:
            raise ValueError(
                f"a callable target must return one score per input, got {tuple(scores.shape)}"
            )
        return scores
    _check_2d(output)
    if rows is None:
        if target is None:
            index = output.detach().argmax(dim=1)
        else:
            index = class_indices(target, output.shape[0], output.shape[1])
    else:
        if target is None:
            raise ValueError("resolve a None target on the untiled output first")
        given = torch.as_tensor(target).reshape(-1)
        index = class_indices(given, given.numel(), output.shape[1])
        index = index[rows.cpu()] if given.numel() > 1 else index.expand(rows.shape[0])
    return output.gather(1, index.to(output.device)[:, None])[:, 0]


def target_label(target: Target) -> Any:
    """A JSON-friendly description of a target for result metadata."""
    if target is None or isinstance(target, int):
        return target
    if isinstance(target, torch.Tensor):
        return [int(t) for t in target.reshape(-1)]
    if callable(target):
        return getattr(target, "__name__", "callable")
    return [int(t) for t in target]


class Attribution(ABC):
    """Base of every attribution method: holds the model, explains with `attribute`."""

    name: str = "attribution"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @abstractmethod
    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        """Explain `model(inputs)` for `target`; see the module docstring for target forms."""


class GradientAttribution(Attribution):
    """Methods built on gradients of the target score.

    With `layer` (a module or dotted name) the gradients are taken with respect to that
    layer's output instead of the input, captum's Layer* style: for an embedding layer the
    result is one score per token (summed over the embedding dimension).
    """

    def __init__(self, model: nn.Module, layer: nn.Module | str | None = None) -> None:
        super().__init__(model)
        self.layer: nn.Module | None = None
        self.layer_name: str | None = None
        if layer is not None:
            self.layer, self.layer_name = find_module(model, layer)

    def gradients(
        self,
        inputs: torch.Tensor,
        target: Target,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        rows: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`(grad, value, output)`: gradient of the target scores w.r.t. the attributed tensor
        (the input, or the layer's output), that tensor's value, and the model output.
        `transform` maps the attributed tensor before the model goes on (noise, interpolation);
        `value` is after the transform."""
        if self.layer is None:
            value = inputs.detach() if transform is None else transform(inputs.detach())
            leaf = value.detach().requires_grad_(True)
            with torch.enable_grad():
                output = first_tensor(self.model(leaf))
        else:
            raw, leaf = forward_from_layer(self.model, self.layer, inputs, transform)
            output = first_tensor(raw)
        with torch.enable_grad():
            scores = target_scores(output, target, rows)
            (grad,) = torch.autograd.grad(scores.sum(), leaf)
        return grad, leaf.detach(), output.detach()

    def result(
        self, attributions: torch.Tensor, inputs: torch.Tensor, target: Target, **extra: Any
    ) -> AttributionResult:
        """Wrap per-element attributions; layer attributions on (B, T, E) become per-token."""
        layer_map = None
        if self.layer is not None and attributions.ndim == 3:
            layer_map = attributions
            attributions = attributions.sum(dim=-1)
        return AttributionResult(
            attributions=attributions.detach(),
            method=self.name,
            target=target_label(target),
            layer=self.layer_name,
            inputs=inputs.detach(),
            layer_map=layer_map,
            **extra,
        )


def expand_rows(batch: int, repeats: int, device: torch.device) -> torch.Tensor:
    """Input index of each row when a batch of `batch` inputs is tiled `repeats` times."""
    return torch.arange(batch, device=device).repeat(repeats)
