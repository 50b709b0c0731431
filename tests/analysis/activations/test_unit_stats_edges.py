"""`unit_stats` on awkward values: NaN counts as non-zero (as in `count_nonzero`), exact ties
keep the earlier input, and the top-k positions of tied maxima are the first position."""

from __future__ import annotations

import torch
from torch import nn

from deepscope.analysis.activations import unit_stats


def test_nan_is_not_zero_and_ties_keep_the_earlier_input() -> None:
    net = nn.Sequential(nn.Identity())
    g = torch.Generator().manual_seed(0)
    x = torch.round(2 * torch.rand(12, 3, 4, 4, generator=g))  # values 0, 1, 2: many ties
    x[5, 1, 2, 3] = float("nan")
    x[7, 2] = 0.0  # an all-zero map
    batches = [x[i : i + 5] for i in range(0, 12, 5)]  # 5, 5, 2 items
    table = unit_stats(net, batches, ["0"], top_k=4, progress=False)["0"]
    per_unit = x.transpose(0, 1).reshape(3, -1)
    want_zero = (per_unit == 0).double().mean(1)  # NaN == 0 is False: not a zero
    torch.testing.assert_close(table.zero_fraction, want_zero)
    scores = x.flatten(2).amax(2).t()  # (units, items), NaN propagates like the stream's
    clean = scores.clone()
    clean[1, 5] = -torch.inf  # unit 1's NaN input: NaN sorts last, never in a full top-k
    want = torch.sort(-clean, dim=1, stable=True).indices[:, :4]
    assert torch.equal(table.top_indices, want)
