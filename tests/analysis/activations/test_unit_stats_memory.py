"""`unit_stats` memory does not grow with the dataset: the streaming state (sums, top-k
values, indices, positions and receptive-field crops) holds the same bytes after 100 and
after 1,000 batches, counted from the tensors' storages (not RSS, not timing)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from deepscope.analysis.activations import unit_stats


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 2))


def _rising(batches: int) -> Iterator[torch.Tensor]:
    """Inputs that grow batch after batch (a pattern and its negative, so every unit's
    ReLU fires on one of them), so each batch displaces most of every unit's top-k (the
    worst case for the crops kept); streamed from a generator, never held."""
    pattern = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for j in range(batches):
        yield (1.0 + j) * torch.cat([pattern, -pattern])


@pytest.fixture
def one_thread() -> Iterator[None]:
    """1,100 tiny batches: on a shared, loaded machine two OpenMP threads mostly wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
def test_streaming_state_bytes_do_not_grow_with_the_dataset() -> None:
    net = _net().eval()
    small = unit_stats(net, _rising(100), ["1", "3"], top_k=3, progress=False)
    large = unit_stats(net, _rising(1000), ["1", "3"], top_k=3, progress=False)
    assert small.meta["items"] == 200 and large.meta["items"] == 2000
    assert large.meta["state_bytes"] == small.meta["state_bytes"] > 0
    # the top-k really churned: the last inputs hold every unit's top 3, each with its crop
    table = large["1"]
    assert table.top_indices.min() >= 2000 - 6  # one item of each of the last 3 batches
    assert table.crops is not None and all(len(row) == 3 for row in table.crops)
    for crop in table.crops[0]:
        assert crop is not None and crop.shape == (1, 3, 3)  # the 3×3 receptive field
        # a crop owns its bytes: it keeps no 2-item batch alive behind it
        assert crop.untyped_storage().nbytes() == crop.numel() * crop.element_size()

    # and the state is what the layers need, no more: per layer 4 unit vectors (sums in
    # float64, max in float32), k values (float32), k indices and k positions (int64)
    # per unit, and for the conv ReLU k crops of 3×3 float32 pixels per unit
    def expected(units: int, crops: int) -> int:
        return units * (3 * 8 + 4) + units * 3 * (4 + 8 + 8) + units * 3 * crops * 4

    assert large.meta["state_bytes"] == expected(3, 9) + expected(2, 0)
