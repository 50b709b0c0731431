"""Per-head statistics against hand computations: entropy, mean attention distance (tokens
and patches), sink heads with their fraction, and clustering of heads by similarity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from deepscope.analysis.attention import Attention
from deepscope.errors import DeepscopeError

N = 4
UNIFORM = torch.full((N, N), 1 / N)
DIAG = torch.eye(N)
FIRST = torch.zeros(N, N)
FIRST[:, 0] = 1.0
PREV = torch.zeros(N, N)
PREV[0, 0] = 1.0
for _i in range(1, N):
    PREV[_i, _i - 1] = 1.0


def _result(**layers: list[torch.Tensor]) -> Attention:
    weights = {k: torch.stack(v) for k, v in layers.items()}
    heads = {k: list(range(len(v))) for k, v in layers.items()}
    return Attention(weights, heads, [f"t{i}" for i in range(N)], range(N))


def test_entropy_and_distance_equal_hand_values() -> None:
    half = torch.zeros(N, N)
    half[:, :2] = 0.5  # every query: half on key 0, half on key 1
    res = _result(l0=[UNIFORM, DIAG, half], l1=[PREV, FIRST])
    stats = {s.name: s for s in res.head_stats()}
    assert list(stats) == ["l0/head0", "l0/head1", "l0/head2", "l1/head0", "l1/head1"]
    assert stats["l0/head0"].entropy == pytest.approx(math.log(N))
    assert stats["l0/head0"].entropy_norm == pytest.approx(1.0)
    assert stats["l0/head1"].entropy == 0.0 and stats["l0/head1"].distance == 0.0
    assert stats["l0/head2"].entropy == pytest.approx(math.log(2))
    assert stats["l0/head2"].entropy_norm == pytest.approx(1.0)  # uniform over its 2 keys
    # uniform over 4 keys: mean |i-j| per row = (6/4, 4/4, 4/4, 6/4) → 1.25
    assert stats["l0/head0"].distance == pytest.approx(1.25)
    # previous token: 0 for row 0, 1 for the others → 0.75
    assert stats["l1/head0"].distance == pytest.approx(0.75)
    # first token: |i - 0| → mean of 0,1,2,3
    assert stats["l1/head1"].distance == pytest.approx(1.5)
    assert stats["l1/head1"].first_mass == 1.0
    assert stats["l0/head0"].first_mass == pytest.approx(0.25)


def test_distance_uses_absolute_query_positions_and_patch_grid() -> None:
    # queries 2..3 only (captured with queries=(2, 4)): previous-token distance is 1 each
    res = Attention({"l": PREV[None, 2:]}, {"l": [0]}, ["a"] * N, range(2, 4))
    assert res.head_stats()[0].distance == pytest.approx(1.0)
    # [CLS] + a 2 × 2 patch grid: patch (0,0) attending to patch (1,1) is √2 away
    w = torch.zeros(1, 5, 5)
    w[0, :, 0] = 1.0
    w[0, 1] = 0.0
    w[0, 1, 4] = 1.0
    vit = Attention({"l": w}, {"l": [0]}, ["c", "p0", "p1", "p2", "p3"], range(5), (2, 2))
    # rows: [CLS]→[CLS] 0, p(0,0)→p(1,1) √2, p→[CLS] 0 for the rest
    assert vit.head_stats()[0].distance == pytest.approx(math.sqrt(2) / 5)


def test_sinks_found_with_their_fraction_and_threshold() -> None:
    mostly_first = 0.3 * UNIFORM + 0.7 * FIRST  # 0.775 on token 0
    res = _result(l0=[UNIFORM, mostly_first], l1=[DIAG, FIRST])
    found = res.sinks()
    assert [(s.name, round(s.fraction, 6)) for s in found] == [
        ("l1/head1", 1.0),
        ("l0/head1", 0.775),
    ]
    assert [s.name for s in res.sinks(threshold=0.9)] == ["l1/head1"]
    # the diagonal head puts 1.0 on token 0 only from query 0 itself: excluded, so no sink
    assert all(s.name != "l1/head0" for s in res.sinks(threshold=0.0))
    assert res.sinks(token=1, threshold=0.0)[0].name in ("l0/head0", "l0/head1")
    with pytest.raises(DeepscopeError, match="threshold"):
        res.sinks(threshold=1.5)


def test_cluster_heads_groups_heads_with_the_same_pattern() -> None:
    g = torch.Generator().manual_seed(0)

    def noisy(m: torch.Tensor) -> torch.Tensor:
        return m + 0.05 * torch.rand(N, N, generator=g)

    res = _result(
        l0=[noisy(DIAG), noisy(FIRST), noisy(PREV)],
        l1=[noisy(FIRST), noisy(DIAG), noisy(PREV)],
    )
    cl = res.cluster_heads(n_clusters=3)
    assert cl.names == [f"l{k}/head{h}" for k in (0, 1) for h in range(3)]
    flat = torch.stack([w.flatten() for lw in res.weights.values() for w in lw]).double()
    unit = flat / flat.norm(dim=1, keepdim=True)
    np.testing.assert_allclose(cl.similarity, (unit @ unit.T).numpy(), atol=1e-12)
    pairs = {frozenset(p) for p in [(0, 4), (1, 3), (2, 5)]}  # diag, first, prev
    labels = cl.labels
    for a, b in pairs:
        assert labels[a] == labels[b]
    assert len(set(labels)) == 3
    # in the order, each pair sits side by side
    pos = {h: i for i, h in enumerate(cl.order)}
    assert sorted(cl.order) == list(range(6))
    for a, b in pairs:
        assert abs(pos[a] - pos[b]) == 1


def test_cluster_heads_needs_one_shape() -> None:
    res = Attention(
        {"a": torch.ones(1, 2, 2), "b": torch.ones(1, 2, 3)},
        {"a": [0], "b": [0]},
        ["x", "y", "z"],
        range(2),
    )
    with pytest.raises(DeepscopeError, match="one shape"):
        res.cluster_heads()
