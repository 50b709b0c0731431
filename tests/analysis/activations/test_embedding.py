"""`Activations.embedding(layer)`: one pooled row per input, checked against the layer's
output computed by hand (no hooks), and clear errors for what cannot be embedded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deepscope.analysis.activations import activations
from deepscope.errors import DeepscopeError


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 5, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(5 * 4 * 4, 7),
    ).eval()


def test_conv_and_flat_embeddings_equal_a_hand_computation() -> None:
    net = _net()
    x = torch.randn(4, 2, 6, 6)
    acts = activations(net, x)
    with torch.no_grad():
        conv = F.conv2d(x, net[0].weight, net[0].bias)  # (4, 5, 4, 4), by hand
        logits = F.linear(torch.relu(conv).flatten(1), net[3].weight, net[3].bias)
    emb = acts.embedding("0")
    assert emb.shape == (4, 5) and emb.dtype == torch.float32 and emb.device.type == "cpu"
    want_mean = torch.tensor([[float(conv[i, c].sum()) / 16 for c in range(5)] for i in range(4)])
    torch.testing.assert_close(emb, want_mean)
    want_max = torch.tensor([[float(conv[i, c].max()) for c in range(5)] for i in range(4)])
    torch.testing.assert_close(acts.embedding("0", pool="max"), want_max)
    # the ReLU's mean differs from the conv's: negative values were clipped
    torch.testing.assert_close(acts.embedding("1"), torch.relu(conv).mean((2, 3)))
    assert not torch.allclose(acts.embedding("1"), emb)
    # a flat (N, D) output is returned as it is, for mean and max alike
    torch.testing.assert_close(acts.embedding("3"), logits)
    torch.testing.assert_close(acts.embedding("3", pool="max"), logits)


def test_sequence_outputs_pool_over_tokens_not_units() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(3, 6)).eval()
    x = torch.randn(2, 5, 3)  # (N, T, D): 5 tokens
    acts = activations(net, x)
    with torch.no_grad():
        out = x @ net[0].weight.t() + net[0].bias  # (2, 5, 6)
    want = torch.stack([sum(out[i, t] for t in range(5)) / 5 for i in range(2)])
    emb = acts.embedding("0")
    assert emb.shape == (2, 6)
    torch.testing.assert_close(emb, want)
    torch.testing.assert_close(acts.embedding("0", pool="max"), out.max(1).values)


def test_conv1d_outputs_pool_over_length() -> None:
    conv = nn.Conv1d(2, 3, 2).eval()
    x = torch.randn(4, 2, 9)
    acts = activations(nn.Sequential(conv), x)
    with torch.no_grad():
        want = F.conv1d(x, conv.weight, conv.bias).mean(2)
    assert acts.embedding("0").shape == (4, 3)
    torch.testing.assert_close(acts.embedding("0"), want)


def test_embedding_errors_say_what_to_do() -> None:
    net = _net()
    x = torch.randn(2, 2, 6, 6)
    acts = activations(net, x)
    with pytest.raises(KeyError, match="close matches: '3'"):
        acts.embedding("33")
    stats = activations(net, x, keep="stats")
    with pytest.raises(DeepscopeError, match="keep='all'"):
        stats.embedding("0")
    with pytest.raises(DeepscopeError, match="pool"):
        acts.embedding("0", pool="median")
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True)
    seq = activations(nn.Sequential(lstm), torch.randn(3, 5, 3))
    assert seq.embedding("0:0").shape == (3, 4)  # the sequence output, over time steps
    with pytest.raises(DeepscopeError, match="not one row per input"):
        seq.embedding("0:1.0")  # h_n is (layers, batch, units)
