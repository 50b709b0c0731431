"""Deconvnet (Zeiler & Fergus, 2014): backpropagation where every ReLU passes back the
positive part of the incoming gradient, whatever its forward input was (captum
`Deconvolution`). See `guided_backprop.relu_override` for how ReLUs are found.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    >>> Deconvnet(net).attribute(torch.rand(2, 4), target=0).attributions.shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from deepscope.analysis.attribution.guided_backprop import GuidedBackprop


class Deconvnet(GuidedBackprop):
    """grad_in = relu(grad_out) at every ReLU; signed, input-shaped."""

    name = "deconvnet"
    rule = "deconv"


__all__ = ["Deconvnet"]
