"""Token ids (integer inputs): gradients go through the embedding that reads them, occlusion
replaces tokens, CAMs give one score per token — checked against captum and by hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from deepscope.analysis.attribution import Saliency, attribute, smooth
from deepscope.capture.hooks import find_module


class EmbedNet(nn.Module):
    """nn.Embedding → per-token tanh projection → mean over tokens → classes."""

    def __init__(self, vocab: int = 20, dim: int = 8) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.proj = nn.Linear(dim, 16)
        self.act = nn.Tanh()
        self.fc = nn.Linear(16, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(self.act(self.proj(self.embedding(ids))).mean(dim=1))


class OneHotNet(nn.Module):
    """Reads ids without an embedding layer: nothing to attribute through automatically."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(20, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.fc(nn.functional.one_hot(ids, 20).float()).mean(dim=1)


@pytest.fixture(scope="module")
def embed_net() -> EmbedNet:
    torch.manual_seed(0)
    return EmbedNet().eval()


def _ids(vocab: int, seed: int, length: int = 10) -> torch.Tensor:
    return torch.randint(4, vocab, (3, length), generator=torch.Generator().manual_seed(seed))


def _cases(embed_net: EmbedNet, tiny_bert: nn.Module) -> dict[str, tuple[Any, ...]]:
    """name → (model, forward returning logits, embedding layer name, ids)."""
    return {
        "embedding": (embed_net, embed_net, "embedding", _ids(20, 0)),
        "bert": (
            tiny_bert,
            lambda ids: tiny_bert(ids).logits,
            "bert.embeddings.word_embeddings",
            _ids(50, 1),
        ),
    }


@pytest.fixture(params=["embedding", "bert"])
def case(request: pytest.FixtureRequest, embed_net: EmbedNet, tiny_bert: nn.Module) -> Any:
    return _cases(embed_net, tiny_bert)[request.param]


def test_saliency_on_ids_goes_through_the_embedding(case: Any) -> None:
    model, forward, layer, ids = case
    auto = attribute(model, ids, 1, method="saliency")
    explicit = attribute(model, ids, 1, method="saliency", layer=layer)
    assert auto.layer == layer and auto.is_tokens and auto.attributions.shape == ids.shape
    assert torch.equal(auto.attributions, explicit.attributions)
    module, _ = find_module(model, layer)
    kept: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        scores = forward(ids)[:, 1].sum()
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(scores, kept[0])
    assert torch.allclose(auto.attributions, grad.abs().sum(dim=-1), atol=1e-6)


def test_gradient_x_input_matches_captum_layer_gradient_x_activation(case: Any) -> None:
    from captum.attr import LayerGradientXActivation

    model, forward, layer, ids = case
    ours = attribute(model, ids, [0, 1, 1], method="gradient_x_input")
    module, _ = find_module(model, layer)
    theirs = LayerGradientXActivation(forward, module).attribute(ids, target=[0, 1, 1])
    assert torch.allclose(ours.attributions, theirs.sum(dim=-1), atol=1e-6)


def test_integrated_gradients_matches_captum_layer_integrated_gradients(case: Any) -> None:
    from captum.attr import LayerIntegratedGradients

    model, forward, layer, ids = case
    pad = torch.zeros_like(ids)  # a [PAD]-token baseline, given as token ids
    ours = attribute(model, ids, 1, method="integrated_gradients", baselines=pad, n_steps=16)
    module, _ = find_module(model, layer)
    theirs = LayerIntegratedGradients(forward, module).attribute(
        ids, baselines=pad, target=1, n_steps=16
    )
    assert torch.allclose(ours.attributions, theirs.sum(dim=-1), atol=1e-5)
    assert ours.delta is not None and ours.delta.abs().max() < 1e-2


@pytest.mark.parametrize("baseline", [0, 3])
def test_occlusion_replaces_one_token_at_a_time(case: Any, baseline: int) -> None:
    model, forward, _, ids = case
    result = attribute(
        model, ids, 2 if model.__class__ is EmbedNet else 1, method="occlusion", baselines=baseline
    )
    target = 2 if model.__class__ is EmbedNet else 1
    assert result.is_tokens and result.attributions.shape == ids.shape
    expected = torch.empty(ids.shape)
    with torch.no_grad():
        reference = forward(ids)[:, target]
        for t in range(ids.shape[1]):
            occluded = ids.clone()
            occluded[:, t] = baseline
            expected[:, t] = reference - forward(occluded)[:, target]
    assert torch.allclose(result.attributions, expected, atol=1e-6)


def _manual_token_grad_cam(
    forward: Callable[[torch.Tensor], torch.Tensor],
    module: nn.Module,
    ids: torch.Tensor,
    target: int,
) -> torch.Tensor:
    kept: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: kept.append(out))
    try:
        score = forward(ids)[:, target].sum()
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(score, kept[0])
    weights = grad.mean(dim=1, keepdim=True)  # (B, 1, C): averaged over token positions
    return (weights * kept[0]).sum(dim=-1).clamp_min(0).detach()


@pytest.mark.parametrize("method", ["grad_cam", "layer_cam", "hires_cam", "eigen_cam"])
def test_cams_on_token_models_give_per_token_maps(case: Any, method: str) -> None:
    model, forward, _, ids = case
    result = attribute(model, ids, 1, method=method)
    assert result.is_tokens and result.attributions.shape == ids.shape
    expected_layer = (
        "act" if model.__class__ is EmbedNet else "bert.encoder.layer.0.output.LayerNorm"
    )
    assert result.layer == expected_layer
    if method == "grad_cam":
        module, _ = find_module(model, expected_layer)
        manual = _manual_token_grad_cam(forward, module, ids, 1)
        assert torch.allclose(result.attributions, manual, atol=1e-6)


def test_score_cam_refuses_token_ids(embed_net: EmbedNet) -> None:
    with pytest.raises(ValueError, match="token ids cannot be masked; use grad_cam"):
        attribute(embed_net, _ids(20, 2), 0, method="score_cam")


def test_an_image_window_on_tokens_says_what_to_pass(embed_net: EmbedNet) -> None:
    with pytest.raises(ValueError, match=r"window=\(k,\) for token ids"):
        attribute(embed_net, _ids(20, 2), 0, method="occlusion", window=(8, 8))
    with pytest.raises(ValueError, match="not one"):
        attribute(embed_net, _ids(20, 2), 0, method="occlusion", baselines=0.5)


def test_ids_without_an_embedding_layer_ask_for_layer() -> None:
    with pytest.raises(ValueError, match="pass layer="):
        attribute(OneHotNet(), _ids(20, 3), 0, method="saliency")


def test_smoothgrad_on_ids_adds_noise_to_the_embedding(tiny_bert: nn.Module) -> None:
    ids = _ids(50, 4)
    plain = attribute(tiny_bert, ids, 1, method="saliency").attributions
    silent = smooth(Saliency(tiny_bert), n=2, sigma=0.0, seed=0).attribute(ids, 1)
    assert torch.allclose(silent.attributions, plain, atol=1e-6)
    noisy = smooth(Saliency(tiny_bert), n=4, sigma=0.2, seed=0).attribute(ids, 1)
    assert (
        noisy.attributions.shape == ids.shape and noisy.layer == "bert.embeddings.word_embeddings"
    )
    assert not torch.allclose(noisy.attributions, plain, atol=1e-3)
