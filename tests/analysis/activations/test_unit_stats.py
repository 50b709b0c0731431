"""`unit_stats`: streamed statistics equal the whole-dataset ones, and the top-k inputs of
a unit built to detect a pattern are exactly the inputs that hold the pattern."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from deepscope.analysis.activations import activations, unit_stats
from deepscope.errors import DeepscopeError

CROSS = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
BAR = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
CROSS_AT = {5: (3, 4), 17: (10, 1), 33: (6, 9)}  # input index -> top-left of the cross
BAR_AT = {2: (0, 0), 9: (12, 12)}


def _detector() -> nn.Module:
    """Unit 0 of the last layer fires on a cross, unit 1 on a horizontal bar (3×3 conv,
    ReLU, 2×2 max-pool, identity 1×1 conv)."""
    conv = nn.Conv2d(1, 2, 3, bias=False)
    mix = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight[0, 0] = CROSS - CROSS.mean()
        conv.weight[1, 0] = BAR - BAR.mean()
        mix.weight.copy_(torch.eye(2).reshape(2, 2, 1, 1))
    return nn.Sequential(conv, nn.ReLU(), nn.MaxPool2d(2), mix).eval()


def _dataset() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.rand(40, 1, 16, 16, generator=g)
    for i, (r, c) in CROSS_AT.items():
        x[i, 0, r : r + 3, c : c + 3] += CROSS
    for i, (r, c) in BAR_AT.items():
        x[i, 0, r : r + 3, c : c + 3] += BAR
    return x


def _loader(x: torch.Tensor, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + batch], torch.zeros(len(x[i : i + batch]))) for i in range(0, len(x), batch)]


def test_top_k_are_exactly_the_inputs_holding_the_pattern() -> None:
    x = _dataset()
    stats = unit_stats(_detector(), _loader(x, 7), ["3"], top_k=3, progress=False)
    table = stats["3"]
    assert set(table.top_indices[0].tolist()) == set(CROSS_AT)
    assert set(table.top_indices[1, :2].tolist()) == set(BAR_AT)
    assert stats.meta["items"] == 40
    # the receptive field of the pooled 3×3 conv is 4×4, found by gradient
    rf = table.receptive_field
    assert rf is not None and rf["size"] == (4, 4) and rf["stride"] == (2.0, 2.0)
    assert table.top_boxes is not None and table.crops is not None
    for rank, index in enumerate(table.top_indices[0].tolist()):
        r, c = CROSS_AT[index]
        y0, y1, x0, x1 = table.top_boxes[0, rank].tolist()
        assert y0 <= r and r + 3 <= y1 and x0 <= c and c + 3 <= x1, (index, (y0, y1, x0, x1))
        crop = table.crops[0][rank]
        assert crop is not None and torch.equal(crop, x[index, :, y0:y1, x0:x1])


def test_streamed_statistics_equal_whole_dataset_statistics() -> None:
    x = _dataset()
    net = _detector()
    stats = unit_stats(net, _loader(x, 6), ["1", "3"], top_k=5, progress=False)
    whole = activations(net, x, ["1", "3"])
    for name in ("1", "3"):
        per_unit = whole[name].transpose(0, 1).reshape(2, -1).double()
        t = stats[name]
        torch.testing.assert_close(t.mean, per_unit.mean(1))
        torch.testing.assert_close(t.std, per_unit.std(1, unbiased=False))
        torch.testing.assert_close(t.max, per_unit.max(1).values)
        torch.testing.assert_close(t.zero_fraction, (per_unit == 0).double().mean(1))
        scores = whole[name].flatten(2).max(2).values  # (items, units)
        expected = torch.sort(-scores.t(), dim=1, stable=True).indices[:, :5]
        assert torch.equal(t.top_indices, expected)
        torch.testing.assert_close(t.top_values, scores.t().gather(1, expected))
    rows = stats["3"].rows(sort_by="max")
    assert [r["unit"] for r in rows] == stats["3"].max.argsort(descending=True).tolist()


def test_non_spatial_units_and_dict_free_batches() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    data = [torch.randn(5, 4, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    stats = unit_stats(net, data, None, top_k=2, progress=False)
    assert stats.layers == ["0", "1"]
    table = stats["1"]
    assert table.top_boxes is None and table.receptive_field is None
    whole = torch.relu(net[0](torch.cat(data))).detach()
    assert torch.equal(
        table.top_indices, whole.t().argsort(dim=1, descending=True, stable=True)[:, :2]
    )


def test_an_empty_dataset_is_a_clear_error() -> None:
    with pytest.raises(DeepscopeError, match="0 items"):
        unit_stats(_detector(), [], ["3"], progress=False)
    empty: Any = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.zeros(0, 1, 8, 8))
    )
    with pytest.raises(DeepscopeError, match="0 items"):
        unit_stats(_detector(), empty, ["3"], progress=False)
    with pytest.raises(DeepscopeError, match="top_k"):
        unit_stats(_detector(), _loader(_dataset(), 8), ["3"], top_k=0, progress=False)


def test_no_hook_remains_after_unit_stats_or_a_failing_batch() -> None:
    net = _detector()
    unit_stats(net, _loader(_dataset(), 10), ["3"], progress=False)
    assert all(not m._forward_hooks for m in net.modules())
    bad = [torch.rand(2, 1, 16, 16), torch.rand(2, 3, 16, 16)]  # wrong channel count
    with pytest.raises(RuntimeError):
        unit_stats(net, bad, ["3"], progress=False)
    assert all(not m._forward_hooks for m in net.modules())
