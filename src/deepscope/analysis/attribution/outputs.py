"""Which model output an attribution explains.

Models return a tensor, a tuple (`return_dict=False`), a mapping, or a Hugging Face
`ModelOutput` (`ImageClassifierOutput`, `SequenceClassifierOutput`, `CausalLMOutput…`).
`select_output` picks the scores tensor: by default the tensor itself, a `logits` field, a
pooled (B, D) field (`pooler_output`, `image_embeds`, `text_embeds`: an encoder without a
head), else the first tensor, with an `AttributionWarning` naming it. An `output=` selector
given to any method overrides that: a key ("logits", "start_logits"), an index into a tuple
output, or a callable on the raw output.

Class-index targets need (batch, classes) scores. A (batch, positions, classes) output — a
language model's logits — is read at its last position (the next-token prediction); for
another position pass `output=lambda o: o.logits[:, i]`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, Union

import torch

from deepscope.capture.hooks import first_tensor

OutputSelector = Union[str, int, Callable[[Any], torch.Tensor], None]  # noqa: UP007


def select_output(raw: Any, selector: OutputSelector = None) -> torch.Tensor:
    """The scores tensor of a model's raw output (see the module docstring)."""
    if callable(selector):
        value = selector(raw)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"the output= callable returned {type(value).__name__}, not a tensor")
        return value
    if selector is not None:
        return _pick(raw, selector)
    if isinstance(raw, torch.Tensor):
        return raw
    logits = _field(raw, "logits")
    if isinstance(logits, torch.Tensor):
        return logits
    for name in POOLED:  # an encoder without a head (CLIPVisionModel): its pooled (B, D)
        pooled = _field(raw, name)
        if isinstance(pooled, torch.Tensor) and pooled.ndim == 2:
            return pooled
    try:
        value = first_tensor(raw)
    except TypeError:
        raise TypeError(
            f"the model returned {type(raw).__name__}, with no tensor to explain; pass output= "
            "a key, an index or a callable that returns the scores tensor"
        ) from None
    _warn_fallback(raw, value)
    return value


#: pooled outputs preferred, in this order, when a model output has no ``logits``
POOLED = ("pooler_output", "image_embeds", "text_embeds")


class AttributionWarning(UserWarning):
    """An attribution ran but its answer is suspect (an all-zero map, a guessed output); the
    text says what to do."""


def _field(raw: Any, name: str) -> Any:
    if isinstance(raw, Mapping):
        return raw.get(name)
    return None if isinstance(raw, (tuple, list)) else getattr(raw, name, None)


def _warn_fallback(raw: Any, value: torch.Tensor) -> None:
    """Warn when the first tensor of a structured output was guessed as the scores: a named
    field other than a lone one, or anything not (batch, classes)."""
    if isinstance(raw, Mapping):
        fields = [k for k, v in raw.items() if isinstance(v, torch.Tensor)]
        if len(fields) == 1 and value.ndim == 2:
            return
        used = next((str(k) for k, v in raw.items() if v is value), "its first tensor")
        where = f"field {used!r}"
    elif value.ndim == 2:
        return
    else:
        where = "its first tensor"
    shape = tuple(value.shape)
    view = " (read at its last position)" if value.ndim == 3 else ""
    warnings.warn(
        f"the model's {type(raw).__name__} output has no 'logits' nor a pooled output "
        f"({', '.join(POOLED)}); explaining {where}, shape {shape}{view}. Pass output= a key "
        "(e.g. output='last_hidden_state'), an index, or a callable such as "
        "output=lambda o: o.last_hidden_state[:, 0] to choose what is explained",
        AttributionWarning,
        stacklevel=3,
    )


def _pick(raw: Any, selector: str | int) -> torch.Tensor:
    try:
        if isinstance(selector, str) and not isinstance(raw, Mapping):
            value = getattr(raw, selector)
        elif isinstance(selector, int) and isinstance(raw, Mapping):
            value = list(raw.values())[selector]
        else:
            value = raw[selector]
    except (KeyError, IndexError, AttributeError, TypeError):
        fields = list(raw.keys()) if isinstance(raw, Mapping) else None
        raise ValueError(
            f"output={selector!r} is not in the model's {type(raw).__name__} output"
            + (f" (fields: {', '.join(map(str, fields))})" if fields else "")
        ) from None
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"output={selector!r} selects a {type(value).__name__}, not a tensor")
    return value


def class_view(output: torch.Tensor) -> torch.Tensor:
    """(batch, classes) scores for class-index targets; a 3-D output at its last position."""
    if output.ndim == 3:
        return output[:, -1]
    if output.ndim != 2:
        raise ValueError(
            f"class-index targets need a (batch, classes) output, got shape {tuple(output.shape)};"
            " pass output= a selector of the scores, or a callable target returning one score"
            " per input"
        )
    return output
