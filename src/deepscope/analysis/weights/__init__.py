"""Weights of a model: statistics, heatmaps, filter grids, spectra, and checkpoint diffs.

Example:
    >>> import numpy as np
    >>> import deepscope
    >>> w = deepscope.weights({"fc.weight": np.eye(2)})
    >>> w.stats()["fc.weight"]["absmax"]
    1.0
"""

from __future__ import annotations

from typing import Any

from deepscope.analysis.weights.diff import WeightsDiff, diff
from deepscope.analysis.weights.result import Weights
from deepscope.analysis.weights.spectra import Spectrum, fit_alpha, spectrum

__all__ = ["Spectrum", "Weights", "WeightsDiff", "diff", "fit_alpha", "spectrum", "weights"]


def weights(model_or_file: Any) -> Weights:
    """Every named tensor of a live ``nn.Module``, a Keras 3 model, a ``{name: tensor}``
    mapping, or a model file `deepscope.load_model` opens (.safetensors, .pt/.pth state
    dicts, .onnx, .keras, .h5), read without running code from the file."""
    return Weights.from_target(model_or_file)
