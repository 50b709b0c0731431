"""`Activations`: what `activations(...)` captured, by name, and its pictures.

Example:
    >>> import torch
    >>> acts = Activations(["conv"], {"conv": torch.rand(1, 2, 4, 4)}, unit_axes={"conv": 1})
    >>> acts.feature_maps("conv").kind
    'grid'
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from deepscope.analysis.activations.feature_maps import Picture, feature_maps
from deepscope.errors import DeepscopeError

__all__ = ["Activations", "LayerStats"]


@dataclass
class LayerStats:
    """Per-unit statistics of one output over the batch and every position:
    `mean`, `std`, `min`, `max` and `zero_fraction` (exact zeros), each shape (units,)."""

    mean: torch.Tensor
    std: torch.Tensor
    min: torch.Tensor
    max: torch.Tensor
    zero_fraction: torch.Tensor
    count: int

    @classmethod
    def of(cls, tensor: torch.Tensor, unit_axis: int) -> LayerStats:
        """Statistics of `tensor` per index of `unit_axis` (float64 sums, CPU results)."""
        t = tensor.detach()
        if t.ndim == 0:
            t = t.reshape(1, 1)
        flat = t.movedim(unit_axis, -1).reshape(-1, t.shape[unit_axis]).double()
        mean = flat.mean(0)
        std = flat.std(0, unbiased=False)
        return cls(
            mean=mean.cpu(),
            std=std.cpu(),
            min=flat.min(0).values.cpu(),
            max=flat.max(0).values.cpu(),
            zero_fraction=(flat == 0).double().mean(0).cpu(),
            count=int(flat.shape[0]),
        )


@dataclass
class Activations:
    """Outputs of the selected layers for one forward pass.

    `layers` lists the captured names in the order they ran; `result[name]` is that
    output (a CPU tensor, its first `meta["kept_items"]` items); with ``keep="stats"``,
    `result.stats[name]` holds `LayerStats` instead. `unit_axes[name]` is the axis of the
    units (channels); `module_types[name]` the class name of the module. `meta` records
    the batch size, the items kept, the layout and the selected layers that did not run.
    """

    layers: list[str]
    tensors: dict[str, torch.Tensor]
    stats: dict[str, LayerStats] = field(default_factory=dict)
    unit_axes: dict[str, int] = field(default_factory=dict)
    module_types: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """A notebook shows this result as its dashboard panel (`deepscope.show`)."""
        from deepscope.notebook.show import mimebundle

        return mimebundle(self, **kwargs)

    def _name(self, name: str) -> str:
        if name in self.layers:
            return name
        calls = [n for n in self.layers if n.startswith(name + "@") and ":" not in n]
        if calls:
            raise KeyError(
                f"{name!r} ran {len(calls)} times in this pass; pick one call: "
                + ", ".join(repr(c) for c in calls)
            )
        parts = [n for n in self.layers if n.startswith(name + ":")]
        if parts:
            raise KeyError(
                f"{name!r} output a tuple or mapping; pick a part: "
                + ", ".join(repr(p) for p in parts[:8])
            )
        close = difflib.get_close_matches(name, self.layers, n=5, cutoff=0.5)
        hint = ("close matches: " + ", ".join(map(repr, close))) if close else "see .layers"
        raise KeyError(f"no captured output named {name!r}; {hint}")

    def __getitem__(self, name: str) -> torch.Tensor:
        key = self._name(name)
        if key not in self.tensors:
            raise KeyError(f"{name!r} was captured with keep='stats': read .stats[{name!r}]")
        return self.tensors[key]

    def __contains__(self, name: object) -> bool:
        return name in self.layers

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def calls(self, name: str) -> list[str]:
        """Names of every call of a module: ``[name]``, or ``[name@1, name@2, …]``."""
        if name in self.layers:
            return [name]
        return [n for n in self.layers if n.startswith(name + "@") and ":" not in n]

    def embedding(self, layer: str, *, pool: str = "mean") -> torch.Tensor:
        """`layer`'s output as one vector per input: an (N, D) float32 CPU tensor, N the
        items kept (``meta["kept_items"]``), D the layer's units.

        Spatial and sequence positions are pooled away: conv outputs (N, C, H, W) → (N, C)
        (channels-last Keras outputs likewise, by `unit_axes`), sequences (N, T, D) → (N, D)
        over tokens, flat (N, D) outputs as they are; ``pool`` is ``"mean"`` or ``"max"``.
        For the projector: ``run.log_embedding("fc1", acts.embedding("fc1"))``.
        """
        if pool not in ("mean", "max"):
            raise DeepscopeError(f"pool must be 'mean' or 'max', not {pool!r}")
        key = self._name(layer)
        if key not in self.tensors:
            raise DeepscopeError(
                f"{layer!r} was captured with keep='stats' (statistics only, no values): "
                "capture it with keep='all' to get its embedding"
            )
        t = self.tensors[key]
        if key in self.meta.get("not_batched", ()) or t.ndim == 0:
            raise DeepscopeError(
                f"{key!r} (shape {tuple(t.shape)}) is not one row per input: its first axis "
                "is not the batch (an RNN's final state is (layers, batch, units)); pick a "
                "batch-major output such as the sequence part ':0'"
            )
        x = t.detach().float().cpu()
        if x.ndim == 1:
            return x.reshape(-1, 1).contiguous()
        axis = self.unit_axes.get(key, 1) % x.ndim
        if axis == 0:
            raise DeepscopeError(f"{key!r} has its units on the batch axis; cannot embed it")
        rest = [d for d in range(1, x.ndim) if d != axis]
        if rest:
            x = x.mean(dim=rest) if pool == "mean" else x.amax(dim=rest)
        return x.contiguous()

    def feature_maps(
        self,
        layer: str,
        index: int = 0,
        *,
        scale: str = "shared",
        cmap: str = "viridis",
        max_tiles: int = 64,
        tokens: Sequence[str] | None = None,
    ) -> Picture:
        """Item `index`'s output of `layer` as a picture: a labelled grid of channel tiles
        for spatial outputs (a `scale` "shared" by every tile or per "channel", the `cmap`
        colormap, a colorbar, small maps upscaled to ≥ 64 px crisp pixels), a tokens ×
        units heatmap for sequences, a strip of units otherwise."""
        key = self._name(layer)
        if key not in self.tensors:
            raise DeepscopeError(
                f"{layer!r} was captured with keep='stats': capture with keep='all' to draw it"
            )
        return feature_maps(
            self.tensors[key],
            unit_axis=self.unit_axes.get(key, 1),
            index=index,
            layer=key,
            scale=scale,
            cmap=cmap,
            max_tiles=max_tiles,
            tokens=tokens,
        )
