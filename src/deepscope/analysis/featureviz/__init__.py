"""Feature visualisation by optimisation: what a unit, a layer or a class "looks for".

`visualize(model, objective, ...)` returns a `FeatureViz` (images, objective per step,
settings). Objectives compose like Lucid's: ``"layer:channel"``, `channel`, `neuron`,
`layer` (DeepDream), `class_logit`, `direction`, `diversity`, and `channels(layer)` (every
channel of a layer at once, one image each, in one batch).

Example:
    >>> import torch
    >>> from deepscope.analysis.featureviz import channels, visualize
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    >>> visualize(net, channels("1"), steps=2, size=8, progress=False).images.shape
    torch.Size([4, 3, 8, 8])
"""

from __future__ import annotations

from deepscope.analysis.featureviz.atlas import Atlas, atlas
from deepscope.analysis.featureviz.objectives import (
    Objective,
    as_objective,
    channel,
    channels,
    class_logit,
    direction,
    diversity,
    layer,
    neuron,
)
from deepscope.analysis.featureviz.optimize import visualize
from deepscope.analysis.featureviz.param import ImageParam
from deepscope.analysis.featureviz.result import FeatureViz
from deepscope.analysis.featureviz.transforms import Transforms

__all__ = [
    "Atlas",
    "FeatureViz",
    "ImageParam",
    "Objective",
    "Transforms",
    "as_objective",
    "atlas",
    "channel",
    "channels",
    "class_logit",
    "direction",
    "diversity",
    "layer",
    "neuron",
    "visualize",
]
