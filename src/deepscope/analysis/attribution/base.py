"""The attribution family's base: one verb, `attribute(inputs, target)`, and target handling.

A target says which output to explain: an int (one class for every input), a sequence or
tensor of class indices (one per input), a callable on the model output returning one score
per input, or None (each input's predicted class). The model output is the scores tensor that
`output=` selects (see `outputs`: Hugging Face `ModelOutput`s give their `logits`); a
(batch, positions, classes) output is read at its last position by class-index targets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, Union

import torch
from torch import nn

from deepscope.analysis.attribution.layer_search import channels_last, embedding_layer, is_token_ids
from deepscope.analysis.attribution.outputs import OutputSelector, class_view, select_output
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.capture.hooks import find_module, forward_from_layer

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


def resolve_target(output: torch.Tensor, target: Target) -> Target:
    """Make a None target explicit (each input's predicted class) and validate indices.

    Methods that run the model on tiled or perturbed copies call this on the plain output
    first, so "predicted class" means the prediction on the real input.
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        return target
    output = class_view(output)
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
    output = class_view(output)
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
    """Base of every attribution method: holds the model, explains with `attribute`.

    `output` selects what of the model's output is explained (a key, an index or a callable;
    default: the tensor, `logits`, or the first tensor; see `outputs.select_output`).
    """

    name: str = "attribution"

    def __init__(self, model: nn.Module, output: OutputSelector = None) -> None:
        self.model = model
        self.output = output

    def scores(self, raw: Any) -> torch.Tensor:
        """The explained tensor of a raw model output."""
        return select_output(raw, self.output)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """`model(inputs)`, reduced to the explained tensor."""
        return self.scores(self.model(inputs))

    @abstractmethod
    def attribute(self, inputs: torch.Tensor, target: Target = None) -> AttributionResult:
        """Explain `model(inputs)` for `target`; see the module docstring for target forms."""


class GradientAttribution(Attribution):
    """Methods built on gradients of the target score.

    With `layer` (a module or dotted name) the gradients are taken with respect to that
    layer's output instead of the input, captum's Layer* style: for an embedding layer the
    result is one score per token (summed over the embedding dimension). Token ids (integer
    inputs) carry no gradient: without `layer`, the embedding layer that reads them is used.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: nn.Module | str | None = None,
        *,
        output: OutputSelector = None,
    ) -> None:
        super().__init__(model, output)
        self.layer: nn.Module | None = None
        self.layer_name: str | None = None
        if layer is not None:
            self.layer, self.layer_name = find_module(model, layer)

    def attributed_layer(self, inputs: torch.Tensor) -> tuple[nn.Module | None, str | None]:
        """The layer whose output is attributed: the given one, the embedding for token ids,
        or None (the input itself)."""
        if self.layer is None and is_token_ids(inputs):
            return embedding_layer(self.model, inputs)
        return self.layer, self.layer_name

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
        layer, _ = self.attributed_layer(inputs)
        if layer is None:
            value = inputs.detach() if transform is None else transform(inputs.detach())
            leaf = value.detach().requires_grad_(True)
            with torch.enable_grad():
                output = self.forward(leaf)
        else:
            raw, leaf = forward_from_layer(self.model, layer, inputs, transform)
            output = self.scores(raw)
        with torch.enable_grad():
            scores = target_scores(output, target, rows)
            (grad,) = torch.autograd.grad(scores.sum(), leaf)
        return grad, leaf.detach(), output.detach()

    def result(
        self, attributions: torch.Tensor, inputs: torch.Tensor, target: Target, **extra: Any
    ) -> AttributionResult:
        """Wrap per-element attributions; layer attributions on (B, T, E) become per-token."""
        layer, name = self.attributed_layer(inputs)
        layer_map = None
        if layer is not None and attributions.ndim == 3:
            layer_map = attributions
            attributions = attributions.sum(dim=-1)
        if layer is None and attributions.ndim == 4 and channels_last(self.model):
            extra.setdefault("meta", {})["layout"] = "channels_last"
        return AttributionResult(
            attributions=attributions.detach(),
            method=self.name,
            target=target_label(target),
            layer=name,
            inputs=inputs.detach(),
            layer_map=layer_map,
            **extra,
        )


def expand_rows(batch: int, repeats: int, device: torch.device) -> torch.Tensor:
    """Input index of each row when a batch of `batch` inputs is tiled `repeats` times."""
    return torch.arange(batch, device=device).repeat(repeats)
