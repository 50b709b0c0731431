"""Objectives for feature visualisation: what an image should excite, composable like
Lucid's (`a + b`, `2 * a`, `a - b`, `-a`).

An objective reads the activations of the layers it names and returns one value per image
of the batch (B,); `visualize` maximises their sum, so images never trade off against each
other (except through `diversity`, which compares images on purpose).

Strings are objectives too: ``"layer:channel"`` (a channel's mean activation),
``"layer"`` (DeepDream's mean square), ``"logits:k"`` / ``"output:k"`` (a class logit).

Example:
    >>> obj = channel("features.3", 5) - 0.5 * layer("features.0")
    >>> sorted(obj.layers)
    ['features.0', 'features.3']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Union

import torch

#: the model output's pseudo layer name (class logits)
OUTPUT = "__output__"

#: (activations by layer name, channel axis by layer name) -> one value per image
Fn = Callable[[Mapping[str, torch.Tensor], Mapping[str, int]], torch.Tensor]


@dataclass(frozen=True)
class Objective:
    """A differentiable score per image on some layers' activations.

    `batch` is the batch the objective implies: a number, a layer name (`channels(layer)`:
    one image per channel of that layer), or None; `labels` names each image.
    """

    fn: Fn
    layers: frozenset[str]
    name: str
    batch: int | str | None = None
    labels: tuple[str, ...] = field(default=())

    def __call__(self, acts: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> torch.Tensor:
        return self.fn(acts, axes)

    def __add__(self, other: ObjectiveLike) -> Objective:
        o = as_objective(other)
        return Objective(
            lambda a, x: self(a, x) + o(a, x),
            self.layers | o.layers,
            f"{self.name} + {o.name}",
            _batch(self, o),
            self.labels or o.labels,
        )

    def __radd__(self, other: ObjectiveLike) -> Objective:
        return as_objective(other) + self

    def __neg__(self) -> Objective:
        return Objective(
            lambda a, x: -self(a, x), self.layers, f"-({self.name})", self.batch, self.labels
        )

    def __sub__(self, other: ObjectiveLike) -> Objective:
        return self + (-as_objective(other))

    def __mul__(self, k: float) -> Objective:
        if not isinstance(k, (int, float)):
            raise TypeError("objectives scale by a number; add objectives with +")
        w = float(k)
        return Objective(
            lambda a, x: w * self(a, x), self.layers, f"{w:g}·{self.name}", self.batch, self.labels
        )

    __rmul__ = __mul__


ObjectiveLike = Union[Objective, str]  # noqa: UP007


def _batch(a: Objective, b: Objective) -> int | str | None:
    if a.batch is not None and b.batch is not None and a.batch != b.batch:
        raise ValueError(f"objectives imply batches of {a.batch} and {b.batch} images")
    return a.batch if a.batch is not None else b.batch


def _units(t: torch.Tensor, axis: int) -> torch.Tensor:
    """(B, units, positions...) view of an activation with its units on `axis`."""
    return t.movedim(axis, 1) if axis != 1 else t


def _mean_rest(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).mean(dim=1)


def channel(layer_name: str, index: int) -> Objective:
    """The mean activation of unit/channel `index` of `layer_name` over all positions."""

    def fn(acts: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> torch.Tensor:
        u = _units(acts[layer_name], axes[layer_name])
        _check_unit(layer_name, index, u.shape[1])
        return _mean_rest(u[:, index])

    return Objective(fn, frozenset({layer_name}), f"{layer_name}:{index}", labels=(f"{index}",))


def _check_unit(layer_name: str, index: int, n: int) -> None:
    if not 0 <= index < n:
        raise ValueError(f"layer {layer_name!r} has {n} channels; channel {index} does not exist")


def neuron(layer_name: str, index: int, x: int | None = None, y: int | None = None) -> Objective:
    """One unit at one spatial position (default: the centre) of a conv layer's map."""

    def fn(acts: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> torch.Tensor:
        u = _units(acts[layer_name], axes[layer_name])
        _check_unit(layer_name, index, u.shape[1])
        if u.ndim == 2:
            return u[:, index]
        if u.ndim != 4:
            raise ValueError(
                f"neuron() needs a (B, C, H, W) or (B, C) layer; {layer_name!r} is {u.ndim}-D"
            )
        h, w = u.shape[2], u.shape[3]
        yy, xx = (h // 2 if y is None else y), (w // 2 if x is None else x)
        return u[:, index, yy, xx]

    return Objective(
        fn, frozenset({layer_name}), f"neuron {layer_name}:{index}", labels=(f"{index}",)
    )


def layer(layer_name: str) -> Objective:
    """DeepDream: the mean square of the whole layer's activation."""

    def fn(acts: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> torch.Tensor:
        return _mean_rest(acts[layer_name] ** 2)

    return Objective(fn, frozenset({layer_name}), f"deepdream {layer_name}")


def class_logit(k: int) -> Objective:
    """The model output's score for class `k` (a Hugging Face output's `logits`)."""

    def fn(acts: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> torch.Tensor:
        out = acts[OUTPUT]
        out = out[:, -1] if out.ndim == 3 else out
        if not 0 <= k < out.shape[1]:
            raise ValueError(f"the model has {out.shape[1]} outputs; class {k} does not exist")
        return out[:, k]

    return Objective(fn, frozenset({OUTPUT}), f"logit {k}", labels=(f"class {k}",))


def direction(layer_name: str, vector: torch.Tensor) -> Objective:
    """Cosine-free dot product of each position's unit vector with `vector`, averaged over
    positions (Lucid's `direction`): a feature direction in the layer's space."""
    v = torch.as_tensor(vector, dtype=torch.float32).reshape(-1)

    def fn(acts: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> torch.Tensor:
        u = _units(acts[layer_name], axes[layer_name])
        if u.shape[1] != v.numel():
            raise ValueError(
                f"direction has {v.numel()} entries; layer {layer_name!r} has {u.shape[1]} units"
            )
        shape = (1, -1) + (1,) * (u.ndim - 2)
        return _mean_rest((u * v.to(u.device, u.dtype).reshape(shape)).sum(dim=1))

    return Objective(fn, frozenset({layer_name}), f"direction {layer_name}")


def diversity(layer_name: str) -> Objective:
    """Lucid's diversity term: minus each image's mean cosine similarity of its Gram matrix
    to the other images' (on `layer_name`). Add it to a unit's objective with a batch > 1 to
    get different images for one unit, e.g. ``channel("conv2", 3) + 0.5 * diversity("conv2")``."""

    def fn(acts: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> torch.Tensor:
        u = _units(acts[layer_name], axes[layer_name])
        b, c = u.shape[0], u.shape[1]
        if b < 2:
            return u.new_zeros(b)
        flat = u.reshape(b, c, -1)
        gram = torch.nn.functional.normalize((flat @ flat.transpose(1, 2)).reshape(b, -1), dim=1)
        sim = gram @ gram.T
        off = sim.sum(dim=1) - sim.diagonal()
        return -off / (b - 1)

    return Objective(fn, frozenset({layer_name}), f"diversity {layer_name}")


def channels(layer_name: str, count: int | None = None) -> Objective:
    """Every channel of `layer_name` at once: image i maximises channel i (batch = channel
    count, found on the first step when `count` is None)."""

    def fn(acts: Mapping[str, torch.Tensor], axes: Mapping[str, int]) -> torch.Tensor:
        u = _units(acts[layer_name], axes[layer_name])
        b = u.shape[0]
        if b > u.shape[1]:
            raise ValueError(f"{b} images for the {u.shape[1]} channels of {layer_name!r}")
        idx = torch.arange(b, device=u.device)
        return _mean_rest(u[idx, idx])

    labels = tuple(str(i) for i in range(count)) if count else ()
    batch: int | str = count if count else layer_name
    return Objective(fn, frozenset({layer_name}), f"channels {layer_name}", batch, labels)


def as_objective(spec: ObjectiveLike) -> Objective:
    """An `Objective` from an objective or a string: ``"layer:channel"``, ``"layer"``
    (DeepDream), ``"logits:k"`` / ``"output:k"``."""
    if isinstance(spec, Objective):
        return spec
    if not isinstance(spec, str):
        raise TypeError(
            f"an objective is an Objective or a 'layer:channel' string, not {type(spec).__name__}"
        )
    name, sep, index = spec.rpartition(":")
    if sep and index.strip().lstrip("-").isdigit():
        if name in ("logits", "output"):
            return class_logit(int(index))
        return channel(name, int(index))
    return layer(spec)


__all__ = [
    "OUTPUT",
    "Objective",
    "ObjectiveLike",
    "as_objective",
    "channel",
    "channels",
    "class_logit",
    "direction",
    "diversity",
    "layer",
    "neuron",
]
