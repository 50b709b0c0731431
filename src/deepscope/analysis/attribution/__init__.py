"""Attribution: why a model predicts what it predicts.

`attribute(model, inputs, target, method="grad_cam", layer=None, **options)` runs one method
and returns an `AttributionResult`; the classes behind it share one verb,
`attribute(inputs, target)`. Any model: plain torch, Hugging Face (`ModelOutput`s explain
their `logits`; `output=` picks another field, an index or a callable), live Keras 3 models
(channels-last images), token ids (attributed through the embedding that reads them).

Methods: gradient family (`saliency`, `gradient_x_input`, `integrated_gradients`,
`occlusion`), CAM family (`grad_cam`, `grad_cam_plus_plus`, `hires_cam`, `score_cam`,
`layer_cam`, `eigen_cam`), backprop-rule family (`guided_backprop`, `deconvnet`,
`guided_grad_cam`); `smooth(method)` adds SmoothGrad to any.

Example:
    >>> import torch, deepscope
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
    ...                           torch.nn.Linear(4, 2))
    >>> r = deepscope.attribute(net, torch.rand(2, 3, 16, 16), target=1)
    >>> r.method, r.layer, r.normalized.shape
    ('grad_cam', '1', (2, 16, 16))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from deepscope.analysis.attribution.base import Attribution, GradientAttribution, Target
from deepscope.analysis.attribution.cam_base import AttributionWarning, CAMBase, find_cam_layer
from deepscope.analysis.attribution.deconvnet import Deconvnet
from deepscope.analysis.attribution.eigen_cam import EigenCAM
from deepscope.analysis.attribution.grad_cam import GradCAM
from deepscope.analysis.attribution.grad_cam_plus_plus import GradCAMPlusPlus
from deepscope.analysis.attribution.gradient_x_input import GradientXInput
from deepscope.analysis.attribution.guided_backprop import GuidedBackprop
from deepscope.analysis.attribution.guided_grad_cam import GuidedGradCAM
from deepscope.analysis.attribution.hires_cam import HiResCAM
from deepscope.analysis.attribution.integrated_gradients import IntegratedGradients
from deepscope.analysis.attribution.layer_cam import LayerCAM
from deepscope.analysis.attribution.occlusion import Occlusion
from deepscope.analysis.attribution.result import AttributionResult
from deepscope.analysis.attribution.saliency import Saliency
from deepscope.analysis.attribution.score_cam import ScoreCAM
from deepscope.analysis.attribution.smoothgrad import SmoothGrad, smooth

#: method name -> class; an explicit list (adding a method = adding a line)
METHODS: dict[str, type[Attribution]] = {
    "saliency": Saliency,
    "gradient_x_input": GradientXInput,
    "integrated_gradients": IntegratedGradients,
    "occlusion": Occlusion,
    "grad_cam": GradCAM,
    "grad_cam_plus_plus": GradCAMPlusPlus,
    "hires_cam": HiResCAM,
    "score_cam": ScoreCAM,
    "layer_cam": LayerCAM,
    "eigen_cam": EigenCAM,
    "guided_backprop": GuidedBackprop,
    "deconvnet": Deconvnet,
    "guided_grad_cam": GuidedGradCAM,
}

_LAYERED = (GradientAttribution, CAMBase, GuidedGradCAM)


def attribute(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Target = None,
    method: str | Attribution = "grad_cam",
    layer: nn.Module | str | None = None,
    **options: Any,
) -> AttributionResult:
    """Explain `model(inputs)` for `target` with `method` (a name from `METHODS` or an
    `Attribution` such as `smooth(Saliency(model))`); `options` go to the method's class.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> attribute(net, torch.rand(1, 3, 2, 2), 2, method="saliency").attributions.shape
        torch.Size([1, 3, 2, 2])
    """
    if isinstance(method, Attribution):
        if layer is not None or options:
            raise ValueError("pass layer and options to the method object, not to attribute()")
        return method.attribute(inputs, target)
    cls = METHODS.get(method)
    if cls is None:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if layer is not None:
        if not issubclass(cls, _LAYERED):
            raise ValueError(f"{method} does not take a layer")
        options["layer"] = layer
    return cls(model, **options).attribute(inputs, target)


__all__ = [
    "METHODS",
    "Attribution",
    "AttributionResult",
    "AttributionWarning",
    "CAMBase",
    "Deconvnet",
    "EigenCAM",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientAttribution",
    "GradientXInput",
    "GuidedBackprop",
    "GuidedGradCAM",
    "HiResCAM",
    "IntegratedGradients",
    "LayerCAM",
    "Occlusion",
    "Saliency",
    "ScoreCAM",
    "SmoothGrad",
    "attribute",
    "find_cam_layer",
    "smooth",
]
