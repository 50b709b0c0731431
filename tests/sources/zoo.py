"""Small plain-torch models shared by the source, summary and export tests (and by the file
source tests, which export them to ONNX). Each entry builds a fresh seeded model and its
example inputs; nothing here downloads anything.

Example:
    >>> model, inputs = ZOO["mlp"]()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.flatten = nn.Flatten()
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flatten(self.features(x)))


class BasicBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + x)


class TinyResNet(nn.Module):
    """Skips, and one block (`shared`) called twice: its parameters count once."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(8), BasicBlock(8))
        self.shared = BasicBlock(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(torch.relu(self.stem(x)))
        x = self.shared(self.shared(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class LSTMNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, 16, batch_first=True)
        self.fc = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


class GRUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(8, 12, num_layers=2, bidirectional=True)
        self.fc = nn.Linear(24, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, h = self.rnn(x)
        return self.fc(out[-1])


class Transformer(nn.Module):
    def __init__(self, d_model: int = 32, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, dim_feedforward=64, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, 50)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)))


class TwoInputs(nn.Module):
    """Two inputs, a dict output, a frozen layer, and tied (shared) weights."""

    def __init__(self) -> None:
        super().__init__()
        self.enc_a = nn.Linear(6, 8)
        self.enc_b = nn.Linear(4, 8)
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)
        self.dec = nn.Linear(8, 8, bias=False)
        self.dec.weight = self.frozen.weight  # a parameter shared by two modules

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.tanh(self.enc_a(a) + self.enc_b(b))
        return {"z": self.frozen(h), "recon": self.dec(h)}


class DataDependent(nn.Module):
    """Python control flow on a tensor value: fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Linear(4, 4)
        self.neg = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.pos(x)
        return self.neg(x) * 2


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.norm = nn.LayerNorm(16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.attn(x, x, x)
        return self.norm(x + y)


def _seeded(
    build: Callable[[], nn.Module], inputs: Callable[[], Any]
) -> Callable[[], tuple[nn.Module, Any]]:
    def make() -> tuple[nn.Module, Any]:
        torch.manual_seed(0)
        return build(), inputs()

    return make


ZOO: dict[str, Callable[[], tuple[nn.Module, Any]]] = {
    "mlp": _seeded(MLP, lambda: torch.randn(3, 8)),
    "cnn": _seeded(CNN, lambda: torch.randn(2, 3, 16, 16)),
    "resnet": _seeded(TinyResNet, lambda: torch.randn(2, 3, 8, 8)),
    "lstm": _seeded(LSTMNet, lambda: torch.randn(2, 5, 8)),
    "gru": _seeded(GRUNet, lambda: torch.randn(5, 2, 8)),
    "transformer": _seeded(Transformer, lambda: torch.randint(0, 50, (2, 7))),
    "two_inputs": _seeded(TwoInputs, lambda: (torch.randn(3, 6), torch.randn(3, 4))),
    "data_dependent": _seeded(DataDependent, lambda: torch.ones(2, 4)),
    "attention": _seeded(Attention, lambda: torch.randn(2, 5, 16)),
}
"""name -> () -> (model, example_inputs)."""
