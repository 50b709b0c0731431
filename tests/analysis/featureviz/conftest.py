"""Trained CNNs shared by the feature-visualisation tests (one of each per session): the
demo's digits CNN on scikit-learn's 8×8 digits, and a CIFAR-sized CNN (3×32×32) on
coloured gratings and shapes made here."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

CIFAR_CLASSES = 4


def cifar_like(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n 3×32×32 images in [0, 1], class k of 4: a red horizontal grating, a green vertical
    grating, a blue diagonal grating, a yellow disc; random phase, period, position and
    contrast over a noisy grey background."""
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    colours = torch.tensor(
        [[0.9, 0.15, 0.1], [0.1, 0.85, 0.2], [0.15, 0.25, 0.95], [0.95, 0.9, 0.1]]
    )
    labels = torch.randint(0, CIFAR_CLASSES, (n,), generator=g)
    out = 0.45 + 0.08 * torch.randn(n, 3, 32, 32, generator=g)
    for i in range(n):
        k = int(labels[i])
        u = torch.rand(4, generator=g)
        if k < 3:
            period = 4.0 + 4.0 * float(u[0])
            phase = 2 * math.pi * float(u[1])
            coord = (yy, xx, (xx + yy) / math.sqrt(2))[k]
            mask = 0.5 + 0.5 * torch.sin(2 * math.pi * coord / period + phase)
        else:
            cy, cx = 8 + 16 * float(u[0]), 8 + 16 * float(u[1])
            r = 5 + 4 * float(u[2])
            mask = (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r).float()
        contrast = 0.6 + 0.4 * float(u[3])
        out[i] = out[i] * (1 - contrast * mask) + contrast * mask * colours[k][:, None, None]
    return out.clamp(0, 1), labels


class CifarCNN(nn.Module):
    """Three conv blocks, global average pooling and a linear classifier for 3×32×32."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(32, CIFAR_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(torch.relu(self.conv1(x)))
        h = self.pool(torch.relu(self.conv2(h)))
        h = torch.relu(self.conv3(h))
        return self.fc(h.mean(dim=(2, 3)))


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for epoch in range(epochs):
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        for s in range(0, len(y), 64):
            idx = perm[s : s + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval().zero_grad(set_to_none=True)
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


@pytest.fixture(scope="session")
def digits_cnn() -> tuple[nn.Module, torch.Tensor]:
    """The demo's `DigitsCNN`, trained as the demo does (Adam, lr 2e-3, batches of 64) for
    4 epochs; returns it and the held-out digits (N × 1 × 8 × 8)."""
    pytest.importorskip("sklearn")
    from deepscope.demo.data import load_digits
    from deepscope.demo.train import DigitsCNN

    torch.manual_seed(0)
    data = load_digits()
    model = DigitsCNN()
    acc = _fit(model, data.x_train, data.y_train, epochs=4, lr=2e-3)
    assert acc > 0.9, acc
    return model, data.x_test


@pytest.fixture(scope="session")
def cifar_cnn() -> tuple[CifarCNN, torch.Tensor]:
    """`CifarCNN` trained on 512 `cifar_like` images; returns it and 256 more of them."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = cifar_like(768, g)
    model = CifarCNN()
    acc = _fit(model, x[:512], y[:512], epochs=3, lr=3e-3)
    assert acc > 0.9, acc
    return model, x[512:]
