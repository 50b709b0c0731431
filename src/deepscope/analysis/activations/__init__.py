"""Activations: what each layer of a model outputs, per input and over a dataset.

- `activations(model, inputs, layers=None)` → `Activations` (one forward pass; `result[name]`,
  `result.feature_maps(name)` → a `Picture` with `.save/.show/.image`).
- `unit_stats(model, loader, layers, top_k=9)` → `UnitStats` (streamed per-unit mean, std,
  max, fraction of zeros and the top-k inputs with their receptive-field crops).
- `rnn_states(model, inputs, layer, tokens=None)` → `RNNStates` (units × time heatmaps of
  the hidden and cell states of an RNN/LSTM/GRU layer, torch or Keras).

Works on ``nn.Module`` and on live Keras 3 models on the torch backend.

Example:
    >>> import torch, deepscope
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    >>> deepscope.activations(net, torch.rand(1, 1, 8, 8)).layers
    ['0', '1']
"""

from deepscope.analysis.activations.base import Recorder
from deepscope.analysis.activations.capture import activations
from deepscope.analysis.activations.feature_maps import Picture, feature_maps
from deepscope.analysis.activations.result import Activations, LayerStats
from deepscope.analysis.activations.rnn import RNNStates, rnn_states
from deepscope.analysis.activations.unit_stats import UnitStats, UnitTable, unit_stats

__all__ = [
    "Activations",
    "LayerStats",
    "Picture",
    "RNNStates",
    "Recorder",
    "UnitStats",
    "UnitTable",
    "activations",
    "feature_maps",
    "rnn_states",
    "unit_stats",
]
