"""Any architecture: a ViT-style model (token activations on a grid) and a text classifier
attributed per token through its embedding layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from deepscope.analysis.attribution import METHODS, attribute
from deepscope.analysis.attribution.cam_base import to_grid


class TinyViT(nn.Module):
    """Patch-embedding conv, a CLS token, a pre-norm transformer encoder, a linear head."""

    def __init__(self, classes: int = 3, dim: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, kernel_size=4, stride=4)  # 16×16 → 4×4 tokens
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim, 2, 32, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        return self.head(self.encoder(tokens)[:, 0])


CAMS = ["grad_cam", "grad_cam_plus_plus", "hires_cam", "score_cam", "layer_cam", "eigen_cam"]


@pytest.mark.parametrize("method", CAMS)
def test_vit_cams_have_the_input_shape(method: str) -> None:
    torch.manual_seed(0)
    model = TinyViT().eval()
    x = torch.rand(2, 3, 16, 16)
    # the last block's first norm feeds attention, so every token gets a gradient
    flat = []
    for target in range(3):  # a random model's weighted sum may be negative (ReLU → 0)
        result = attribute(model, x, target, method=method, layer=model.encoder.layers[-1].norm1)
        assert result.layer == "encoder.layers.1.norm1"
        assert result.attributions.shape == (2, 16, 16)
        assert result.layer_map is not None and result.layer_map.shape == (2, 4, 4)
        assert np.isfinite(result.raw).all()
        assert (result.normalized >= 0).all() and (result.normalized <= 1).all()
        flat.append(bool(result.layer_map.std() == 0))
    assert not all(flat)


def test_token_grid_drops_the_cls_token_and_keeps_order() -> None:
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)
    grid = to_grid(tokens)
    assert grid.shape == (2, 3, 4, 4)
    assert torch.equal(grid[0, :, 0, 1], tokens[0, 2])  # token 1 (after CLS) at row 0, col 1
    assert to_grid(tokens, reshape=(2, 8)).shape == (2, 3, 2, 8)
    with pytest.raises(ValueError, match="square grid"):
        to_grid(tokens[:, :7])


class TextClassifier(nn.Module):
    def __init__(self, vocab: int = 20, dim: int = 12) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.gru = nn.GRU(dim, 16, batch_first=True)
        self.fc = nn.Linear(16, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embedding(ids))
        return self.fc(out.max(dim=1).values)


KEY = 3  # the token whose presence decides class 1


def _sequences(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ids = torch.randint(4, 20, (n, 10), generator=g)
    labels = torch.randint(0, 2, (n,), generator=g)
    where = torch.randint(0, 10, (n,), generator=g)
    ids[labels == 1, where[labels == 1]] = KEY
    return ids, labels, where


@pytest.fixture(scope="module")
def text_model() -> TextClassifier:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ids, labels, _ = _sequences(1500, g)
    model = TextClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        for start in range(0, len(ids), 50):
            loss = nn.functional.cross_entropy(
                model(ids[start : start + 50]), labels[start : start + 50]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.mark.parametrize("method", ["gradient_x_input", "integrated_gradients"])
def test_the_deciding_token_gets_the_top_score(text_model: TextClassifier, method: str) -> None:
    ids, labels, where = _sequences(60, torch.Generator().manual_seed(1))
    positive = labels == 1
    with torch.no_grad():
        assert (text_model(ids).argmax(1) == labels).float().mean() > 0.95
    options = {"n_steps": 16} if method == "integrated_gradients" else {}
    result = attribute(
        text_model, ids[positive], 1, method=method, layer=text_model.embedding, **options
    )
    assert result.attributions.shape == (int(positive.sum()), 10)
    assert result.is_tokens
    top = result.attributions.argmax(dim=1)
    assert (top == where[positive]).float().mean() >= 0.9


def test_layer_integrated_gradients_is_complete(text_model: TextClassifier) -> None:
    ids, _, _ = _sequences(4, torch.Generator().manual_seed(2))
    result = attribute(
        text_model, ids, 1, method="integrated_gradients", layer="embedding", n_steps=64
    )
    assert result.delta is not None
    # max-pooling over time has kinks along the path, so the quadrature is not exact
    assert result.delta.abs().mean() < 0.05
    assert METHODS["integrated_gradients"] is type(
        METHODS["integrated_gradients"](text_model, layer="embedding")
    )
