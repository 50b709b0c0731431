"""Models nobody here wrote return more than a tensor: Hugging Face `ModelOutput`s, tuples
(`return_dict=False`), mappings. Every method explains their logits, or what `output=` picks."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.analysis.attribution import METHODS, Saliency, attribute, smooth

SMALL: dict[str, dict[str, Any]] = {
    "integrated_gradients": {"n_steps": 8},
    "occlusion": {"window": (8, 8), "strides": 8},
}


class TupleOutput(nn.Module):
    """A model returning `return_dict=False`-style tuples (logits first)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out: tuple[torch.Tensor, ...] = self.inner(x, return_dict=False)
        return out


class DictOutput(nn.Module):
    """A plain model returning a dict whose first entry is not the scores."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.relu(self.conv(x))
        return {"features": features, "scores": self.fc(features.mean(dim=(2, 3)))}


def _manual_saliency(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(leaf).logits[:, target].sum(), leaf)
    return grad.abs()


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_explains_a_hugging_face_vit(tiny_vit: nn.Module, method: str) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    result = attribute(tiny_vit, x, 1, method=method, **SMALL.get(method, {}))
    input_shaped = method in SMALL or "cam" not in method or method == "guided_grad_cam"
    expected = (2, 3, 32, 32) if input_shaped else (2, 32, 32)
    assert tuple(result.attributions.shape) == expected
    assert np.isfinite(result.raw).all() and result.raw.std() > 0


def test_vit_saliency_is_the_gradient_of_the_logit(tiny_vit: nn.Module) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ours = attribute(tiny_vit, x, 2, method="saliency").attributions
    assert torch.allclose(ours, _manual_saliency(tiny_vit, x, 2), atol=1e-7)


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "grad_cam", "occlusion"])
def test_tuple_outputs_explain_the_same_logits(tiny_vit: nn.Module, method: str) -> None:
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    options = SMALL.get(method, {})
    wrapped = TupleOutput(tiny_vit)
    ours = attribute(wrapped, x, 0, method=method, **options).attributions
    reference = attribute(tiny_vit, x, 0, method=method, **options).attributions
    assert torch.allclose(ours, reference, atol=1e-6)


def test_smoothgrad_on_a_hugging_face_vit(tiny_vit: nn.Module) -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    result = smooth(Saliency(tiny_vit), n=2, seed=0).attribute(x, 1)
    assert result.attributions.shape == (1, 3, 32, 32) and result.raw.std() > 0


@pytest.mark.parametrize("selector", ["scores", 1, lambda out: out["scores"]])
def test_output_selector_picks_key_index_or_callable(selector: Any) -> None:
    torch.manual_seed(0)
    model, x = DictOutput().eval(), torch.rand(2, 3, 8, 8)
    result = attribute(model, x, 2, method="saliency", output=selector)
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(leaf)["scores"][:, 2].sum(), leaf)
    assert torch.allclose(result.attributions, grad.abs())
    cam = attribute(model, x, 2, method="grad_cam", layer="conv", output=selector)
    assert cam.attributions.shape == (2, 8, 8)


def test_a_wrong_selector_names_the_fields() -> None:
    model, x = DictOutput().eval(), torch.rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="fields: features, scores"):
        attribute(model, x, 0, method="saliency", output="logits")


def test_bert_sequence_classifier_output(tiny_bert: nn.Module) -> None:
    ids = torch.randint(5, 50, (2, 10), generator=torch.Generator().manual_seed(0))
    for method in METHODS:
        if method == "score_cam":
            continue  # masks the input: refused for token ids (test_token_attribution)
        options = {"n_steps": 8} if method == "integrated_gradients" else {}
        result = attribute(tiny_bert, ids, 1, method=method, **options)
        assert result.attributions.shape == (2, 10), method
        assert result.is_tokens and np.isfinite(result.raw).all() and result.raw.std() > 0


def test_language_model_explains_the_last_position(tiny_gpt2: nn.Module) -> None:
    ids = torch.randint(1, 50, (2, 8), generator=torch.Generator().manual_seed(0))
    default = attribute(tiny_gpt2, ids, 7, method="gradient_x_input")
    last = attribute(tiny_gpt2, ids, 7, method="gradient_x_input", output=lambda o: o.logits[:, -1])
    third = attribute(tiny_gpt2, ids, 7, method="gradient_x_input", output=lambda o: o.logits[:, 2])
    assert default.layer == "transformer.wte"
    assert torch.allclose(default.attributions, last.attributions)
    # causal: position 2's logits cannot depend on later tokens
    assert torch.all(third.attributions[:, 3:] == 0) and third.raw[:, :3].std() > 0
    with torch.no_grad():
        predicted = tiny_gpt2(ids).logits[:, -1].argmax(1)
    unset = attribute(tiny_gpt2, ids, None, method="saliency").attributions
    assert torch.equal(unset, attribute(tiny_gpt2, ids, predicted, method="saliency").attributions)
    cam = attribute(tiny_gpt2, ids, None, method="grad_cam")
    assert cam.target == predicted.tolist() and cam.attributions.shape == (2, 8)
