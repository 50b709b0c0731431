"""Attention flow: every value equals a brute-force minimum cut of the layered graph, the
one-layer case is the residual matrix itself, and sizes past the limit are refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from deepscope.analysis.attention import Attention, attention_flow
from deepscope.analysis.attention.flow import FlowNetwork, residual_layers
from deepscope.errors import DeepscopeError


def _capacity_matrix(mats: list[torch.Tensor]) -> np.ndarray:
    n = mats[0].shape[0]
    v = (len(mats) + 1) * n
    cap = np.zeros((v, v))
    for layer, a in enumerate(mats):
        cap[(layer + 1) * n : (layer + 2) * n, layer * n : (layer + 1) * n] = a.numpy()
    return cap


def _min_cut(cap: np.ndarray, s: int, t: int) -> float:
    """Max-flow = min-cut: try every set of nodes holding s but not t."""
    others = [u for u in range(cap.shape[0]) if u not in (s, t)]
    best = float("inf")
    for bits in itertools.product((False, True), repeat=len(others)):
        side = np.zeros(cap.shape[0], dtype=bool)
        side[s] = True
        side[others] = bits
        best = min(best, float(cap[side][:, ~side].sum()))
    return best


def _random_layers(n_layers: int, n: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(3 * torch.randn(2, n, n, generator=g), dim=-1) for _ in range(n_layers)]


@pytest.mark.parametrize("n_layers,n,seed", [(2, 3, 0), (3, 3, 1)])
def test_flow_equals_brute_force_min_cut(n_layers: int, n: int, seed: int) -> None:
    layers = _random_layers(n_layers, n, seed)
    raw = attention_flow(layers, normalize=False)
    cap = _capacity_matrix(residual_layers(layers))
    top = n_layers * n
    for i in range(n):
        for j in range(n):
            assert raw[i, j].item() == pytest.approx(_min_cut(cap, top + i, j), abs=1e-9)
    flow = attention_flow(layers)
    np.testing.assert_allclose(flow.numpy(), (raw / raw.sum(-1, keepdim=True)).numpy())
    np.testing.assert_allclose(flow.sum(-1).numpy(), 1.0, atol=1e-12)


def test_flow_hand_example_bottleneck() -> None:
    # layer 0 (residual-added): token 1 keeps 0.75 of itself and reads 0.25 of token 0;
    # layer 1: token 0 reads token 1 with 0.5. The path 0 -> 1 -> 0 carries
    # min(0.5, 0.25) = 0.25 to input 0, plus the direct 0 -> 0 -> 0 path min(0.5, 1) = 0.5.
    l0 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])  # 0.5 A + 0.5 I = [[1, 0], [.25, .75]]
    l1 = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])  # 0.5 A + 0.5 I = [[.5, .5], [0, 1]]
    raw = attention_flow([l0, l1], normalize=False)
    np.testing.assert_allclose(raw.numpy(), [[0.75, 0.5], [0.25, 0.75]], atol=1e-12)
    # rollout multiplies instead: row 0 is [.5 + .125, .375]
    res = Attention({"a": l0, "b": l1}, {"a": [0], "b": [0]}, ["x", "y"], range(2))
    np.testing.assert_allclose(res.rollout()[0].numpy(), [0.625, 0.375])
    np.testing.assert_allclose(res.flow().numpy(), (raw / raw.sum(-1, keepdim=True)).numpy())


def test_one_layer_flow_is_the_residual_matrix() -> None:
    (w,) = _random_layers(1, 5, 2)
    a = residual_layers([w])[0]
    np.testing.assert_allclose(attention_flow([w]).numpy(), a.numpy(), atol=1e-12)


def test_network_keeps_its_capacities_between_flows() -> None:
    net = FlowNetwork(4)
    for u, v, c in [(0, 1, 2.0), (0, 2, 1.0), (1, 3, 1.0), (2, 3, 3.0), (1, 2, 1.0)]:
        net.add_edge(u, v, c)
    assert net.max_flow(0, 3) == pytest.approx(3.0)
    assert net.max_flow(0, 3) == pytest.approx(3.0)
    assert net.max_flow(1, 3) == pytest.approx(2.0)
    assert net.max_flow(3, 0) == 0.0


def test_flow_refuses_sizes_past_the_limit_and_non_square_weights() -> None:
    layers = [torch.full((1, 40, 40), 1 / 40)] * 4
    with pytest.raises(DeepscopeError, match="rollout"):
        attention_flow(layers)
    with pytest.raises(DeepscopeError, match="square"):
        attention_flow([torch.full((1, 2, 3), 1 / 3)])
