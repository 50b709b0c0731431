"""RNN states stepped one time step at a time equal what the layer computes in one call."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepscope.analysis.activations import rnn_states
from deepscope.capture.select import LayerSelectionError
from deepscope.errors import DeepscopeError


class Tagger(nn.Module):
    def __init__(self, rnn: nn.RNNBase) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 4)
        self.rnn = rnn

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.emb(ids))
        return out


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
def test_states_equal_the_layers_own_outputs(kind: type[nn.RNNBase]) -> None:
    torch.manual_seed(0)
    rnn = kind(4, 6, num_layers=2, batch_first=True)
    net = Tagger(rnn).eval()
    ids = torch.randint(0, 20, (3, 7))
    states = rnn_states(net, ids, "rnn", tokens=None)
    with torch.no_grad():
        out, last = rnn(net.emb(ids))
    h_n, c_n = last if isinstance(last, tuple) else (last, None)
    assert states.hidden.shape == (2, 3, 7, 6)
    torch.testing.assert_close(states.hidden[-1], out)  # top layer: the output sequence
    torch.testing.assert_close(states.hidden[:, :, -1], h_n)  # every layer's last state
    if c_n is None:
        assert states.cell is None
    else:
        assert states.cell is not None
        torch.testing.assert_close(states.cell[:, :, -1], c_n)


def test_time_major_input_and_a_tokens_axis() -> None:
    torch.manual_seed(1)
    lstm = nn.LSTM(3, 5)  # (T, B, F)
    x = torch.randn(4, 2, 3)
    tokens = ["the", "cat", "sat", "."]
    states = rnn_states(lstm, x, tokens=tokens)
    with torch.no_grad():
        out, _ = lstm(x)
    torch.testing.assert_close(states.hidden[0], out.transpose(0, 1))
    picture = states.picture("cell", index=1)
    assert picture.kind == "states" and picture.values.shape == (5, 4)  # units × time
    torch.testing.assert_close(torch.from_numpy(picture.values), states.cell[0, 1].t())
    assert picture.image().shape[1] > 64


def test_bad_rnn_requests_are_clear_errors() -> None:
    net = Tagger(nn.GRU(4, 3, batch_first=True))
    ids = torch.randint(0, 20, (1, 5))
    with pytest.raises(DeepscopeError, match="not nn.RNN/LSTM/GRU"):
        rnn_states(net, ids, "emb")
    with pytest.raises(DeepscopeError, match="only LSTMs"):
        rnn_states(net, ids, "rnn").picture("cell")
    with pytest.raises(DeepscopeError, match="3 tokens for 5 time steps"):
        rnn_states(net, ids, "rnn", tokens=["a", "b", "c"])
    with pytest.raises(LayerSelectionError, match="close matches: 'rnn'"):
        rnn_states(net, ids, "rn")
    assert all(not m._forward_pre_hooks for m in net.modules())
