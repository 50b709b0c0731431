"""`visualize`: feature visualisation by optimisation (Olah et al., 2017 / Lucid).

The images are parameterised (`param.py`), randomly transformed every step
(`transforms.py`), fed through the model with forward hooks on the layers the objective
reads (removed afterwards, also on errors; the forward stops after the last of them unless
the objective reads the output), and updated by Adam to maximise the objective's sum. Image
i uses the generator seeded `seed + i` for its initialisation and its transforms, so a
batch of channels gives the images one would get optimising each alone (`seed + i`).

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    >>> fv = visualize(net, "1:2", steps=4, size=16, progress=False)
    >>> tuple(fv.images.shape), len(fv.values)
    ((1, 3, 16, 16), 4)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from deepscope.analysis.activations.base import unit_axis
from deepscope.analysis.attribution.layer_search import channels_last
from deepscope.analysis.attribution.outputs import select_output
from deepscope.analysis.featureviz.objectives import OUTPUT, Objective, ObjectiveLike, as_objective
from deepscope.analysis.featureviz.param import ImageParam
from deepscope.analysis.featureviz.result import FeatureViz
from deepscope.analysis.featureviz.transforms import Transforms, resolve
from deepscope.capture.hooks import find_module, find_tensor

Size = int | tuple[int, int] | tuple[int, int, int] | None


class _Stop(Exception):
    """Raised by the last hook to skip the rest of the forward pass."""


def _device(model: nn.Module) -> torch.device:
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    return p.device if p is not None else torch.device("cpu")


def _input_shape(model: nn.Module, size: Size, last: bool) -> tuple[int, int, int]:
    """(C, H, W) of the model's images: from `size`, a Keras model's input shape, or the
    first Conv2d's input channels."""
    if isinstance(size, tuple) and len(size) == 3:
        return int(size[0]), int(size[1]), int(size[2])
    keras_shape = getattr(model, "input_shape", None)
    known: tuple[int, int, int] | None = None
    if isinstance(keras_shape, tuple) and len(keras_shape) == 4:
        c, h, w = (keras_shape[3], keras_shape[1], keras_shape[2]) if last else keras_shape[1:]
        if None not in (c, h, w):
            known = (int(c), int(h), int(w))
    if size is None:
        if known is None:
            raise ValueError("visualize needs the image size: pass size=(H, W) or (C, H, W)")
        return known
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if known is not None:
        return known[0], h, w
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return (conv.in_channels if conv is not None else 3), h, w


def _normaliser(
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None,
    device: torch.device,
) -> Callable[[torch.Tensor], torch.Tensor]:
    if preprocess is not None:
        if mean is not None or std is not None:
            raise ValueError("pass mean/std or preprocess, not both")
        return preprocess
    m = torch.as_tensor(0.0 if mean is None else mean, dtype=torch.float32, device=device)
    s = torch.as_tensor(1.0 if std is None else std, dtype=torch.float32, device=device)
    m, s = m.reshape(1, -1, 1, 1), s.reshape(1, -1, 1, 1)
    return lambda x: (x - m) / s


class _Capture:
    """Forward hooks keeping the named layers' outputs; `run` feeds a batch."""

    def __init__(self, model: nn.Module, names: frozenset[str], last: bool) -> None:
        self.model, self.last = model, last
        self.names = sorted(n for n in names if n != OUTPUT)
        self.modules = {n: find_module(model, n)[0] for n in self.names}
        self.needs_output = OUTPUT in names
        self.acts: dict[str, torch.Tensor] = {}
        self.axes: dict[str, int] = {}
        self.handles: list[Any] = []

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
            t = find_tensor(output)
            if t is None:
                raise ValueError(f"layer {name!r} returned no tensor")
            self.acts[name] = t
            self.axes[name] = unit_axis(module, t.ndim, self.last and t.ndim == 4)
            if not self.needs_output and len(self.acts) == len(self.names):
                raise _Stop

        return hook

    def __enter__(self) -> _Capture:
        for name, module in self.modules.items():
            self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def run(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.acts = {}
        try:
            raw = self.model(x)
        except _Stop:
            return self.acts
        missing = [n for n in self.names if n not in self.acts]
        if missing:
            raise ValueError(
                f"layer(s) {', '.join(map(repr, missing))} did not run in the forward pass"
            )
        if self.needs_output:
            self.acts[OUTPUT] = select_output(raw, None)
        return self.acts


def _batch_size(obj: Objective, batch: int | None, probe: Callable[[str], int]) -> int:
    implied = obj.batch
    if isinstance(implied, str):
        implied = probe(implied)
    if batch is not None and implied is not None and batch != implied:
        raise ValueError(f"the objective {obj.name!r} optimises {implied} images; batch={batch}")
    return batch or implied or 1


def visualize(
    model: nn.Module,
    objective: ObjectiveLike,
    steps: int = 256,
    size: Size = None,
    param: str = "fourier",
    transforms: str | Transforms | None = "standard",
    batch: int | None = None,
    seed: int = 0,
    lr: float = 0.05,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    preprocess: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
) -> FeatureViz:
    """Optimise images that maximise `objective` (an `Objective` or ``"layer:channel"``).

    `size`: int, (H, W) or (C, H, W) (Keras models: from their input shape). Images live in
    [0, 1] and are fed as `(x - mean) / std` or `preprocess(x)`. `batch` images (default:
    what the objective implies, e.g. one per channel for `channels(layer)`, else 1) are
    optimised together; image i is seeded `seed + i`. Runs on the model's device; the model
    is put in eval mode and restored; its parameters get no gradients.
    """
    obj = as_objective(objective)
    if steps < 1:
        raise ValueError("steps must be at least 1")
    last = channels_last(model)
    c, h, w = _input_shape(model, size, last)
    device = _device(model)
    norm = _normaliser(mean, std, preprocess, device)
    tf = resolve(transforms, (h, w))

    def feed(img: torch.Tensor) -> torch.Tensor:
        x = norm(img)
        return x.permute(0, 2, 3, 1) if last else x

    was_training = model.training
    model.eval()
    try:
        with _Capture(model, obj.layers, last) as cap:

            def probe(name: str) -> int:
                with torch.no_grad():
                    acts = cap.run(feed(torch.full((1, c, h, w), 0.5, device=device)))
                return int(acts[name].shape[cap.axes[name]])

            n = _batch_size(obj, batch, probe)
            gens = [torch.Generator().manual_seed(seed + i) for i in range(n)]
            image = ImageParam(param, n, c, (h, w), gens, device)
            opt = torch.optim.Adam([image.raw], lr=lr)
            values = np.zeros((steps, n), dtype=np.float64)
            from tqdm.auto import trange

            for step in trange(steps, disable=not progress, desc=obj.name, leave=False):
                with torch.enable_grad():
                    acts = cap.run(feed(tf(image(), gens)))
                    score = obj(acts, cap.axes)
                    if score.shape != (n,):
                        raise ValueError(
                            f"objective {obj.name!r} gave shape {tuple(score.shape)}, not ({n},)"
                        )
                    (grad,) = torch.autograd.grad(-score.sum(), image.raw)
                image.raw.grad = grad
                opt.step()
                values[step] = score.detach().double().cpu().numpy()
    finally:
        model.train(was_training)
    with torch.no_grad():
        pixels = image().detach()
        images = norm(pixels).detach()
    if isinstance(obj.batch, str):  # channels(layer): image i is channel i
        labels = [str(i) for i in range(n)]
    else:
        labels = (
            list(obj.labels) if len(obj.labels) == n else [f"{obj.name} #{i}" for i in range(n)]
        )
    if n == 1 and obj.labels:
        labels = [obj.name]
    settings = {
        "objective": obj.name,
        "steps": steps,
        "size": (c, h, w),
        "param": param,
        "transforms": dataclasses.asdict(tf),
        "batch": n,
        "seed": seed,
        "lr": lr,
        "device": str(device),
        "channels_last": last,
    }
    return FeatureViz(images, pixels, values, labels, settings)


__all__ = ["visualize"]
