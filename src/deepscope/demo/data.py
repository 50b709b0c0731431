"""scikit-learn's 8x8 digits (shipped inside scikit-learn: nothing is downloaded)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepscope.errors import require


@dataclass(frozen=True)
class Digits:
    x_train: torch.Tensor  # N x 1 x 8 x 8, values in [0, 1]
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits(test_fraction: float = 0.2, seed: int = 0) -> Digits:
    """The 1,797 digits, shuffled with `seed` and split into train and test."""
    require("sklearn", "demo")
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[perm], y[perm]
    n_test = int(len(y) * test_fraction)
    return Digits(x[n_test:], y[n_test:], x[:n_test], y[:n_test])
