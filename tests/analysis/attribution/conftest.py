"""Shared fixtures: a small CNN trained here on images whose class is decided by one patch."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

SIZE, PATCH = 32, 6


@dataclass
class PatchData:
    images: torch.Tensor  # (N, 1, 32, 32)
    labels: torch.Tensor  # (N,)
    corners: torch.Tensor  # (N, 2) top-left (row, col) of the patch


def make_patch_data(n: int, generator: torch.Generator) -> PatchData:
    """Noise background; a 6×6 patch of horizontal (class 0) or vertical (class 1) stripes,
    or no patch (class 2, so that both stripe classes need evidence of their own)."""
    images = 0.5 + 0.2 * torch.randn(n, 1, SIZE, SIZE, generator=generator)
    labels = torch.randint(0, 3, (n,), generator=generator)
    corners = torch.randint(0, SIZE - PATCH + 1, (n, 2), generator=generator)
    stripes = (torch.arange(PATCH) // 2 % 2).float()  # period 4: survives 2×2 pooling
    horizontal = stripes[:, None].expand(PATCH, PATCH)
    for i in range(n):
        if labels[i] == 2:
            continue
        pattern = horizontal if labels[i] == 0 else horizontal.T
        r, c = corners[i].tolist()
        images[i, 0, r : r + PATCH, c : c + PATCH] = pattern
    return PatchData(images.clamp(0, 1), labels, corners)


class PatchNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@dataclass
class Trained:
    model: PatchNet
    test: PatchData
    accuracy: float


@pytest.fixture(scope="session")
def patch_model() -> Trained:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    train, test = make_patch_data(1200, g), make_patch_data(240, g)
    model = PatchNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        perm = torch.randperm(len(train.labels), generator=g)
        for start in range(0, len(perm), 32):
            idx = perm[start : start + 32]
            loss = nn.functional.cross_entropy(model(train.images[idx]), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(test.images).argmax(1) == test.labels).float().mean().item()
    return Trained(model, test, accuracy)


# Hugging Face models built from tiny configs (no download): hidden 32, 2 layers.


@pytest.fixture(scope="session")
def tiny_vit() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        num_labels=3,
    )
    model: nn.Module = transformers.ViTForImageClassification(config).eval()
    return model


@pytest.fixture(scope="session")
def tiny_bert() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    model: nn.Module = transformers.BertForSequenceClassification(config).eval()
    return model


@pytest.fixture(scope="session")
def tiny_gpt2() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=50,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=32,
        bos_token_id=0,
        eos_token_id=0,
    )
    model: nn.Module = transformers.GPT2LMHeadModel(config).eval()
    return model
