"""The `Attention` result: per layer and head the weights of one batch item, and pictures.

Example:
    >>> import torch
    >>> w = torch.full((2, 3, 3), 1 / 3)
    >>> a = Attention({"l0": w}, {"l0": [0, 1]}, tokens=["a", "b", "c"], queries=range(3))
    >>> a.head_names("l0"), a.rollout().shape
    (['l0/head0', 'l0/head1'], torch.Size([3, 3]))

Derived views: `rollout()`, `flow()` (attention flow), `head_stats()` (entropy, distance,
mass on the first token), `sinks()`, `cluster_heads()`, and for ViT-style models
`patch_map()` / `patch_overlay()` ([CLS] → patches over the input image).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepscope.analysis.activations.feature_maps import Picture
from deepscope.analysis.attention import heads as head_fns
from deepscope.analysis.attention.flow import MAX_WORK, attention_flow
from deepscope.analysis.attention.heads import HeadClusters, HeadStat, Sink
from deepscope.analysis.attention.pooling import Pooled
from deepscope.analysis.attention.rollout import fuse_heads, rollout
from deepscope.analysis.attention.vision import (
    image_size_of,
    overlay_map,
    patch_grid_map,
    upsample,
)
from deepscope.errors import DeepscopeError
from deepscope.render.grid import render_heatmap


@dataclass
class Attention:
    """Attention weights per layer: `weights[layer]` is (heads, queries, keys) float32 on the
    CPU for the kept `heads[layer]` (indices into the layer's heads) and the kept query
    positions `queries`. `tokens` labels the key positions (given strings, a tokenizer's
    tokens, ``[CLS]`` and ``r,c`` patches for a ViT-style model, else the positions);
    `patch_grid` is (rows, columns) of image patches when known. `meta["path"]` says where
    the weights came from: "mha", "huggingface" or "sdpa". When captured with ``block=``,
    `pooled[layer]` holds block-pooled max/mean and the top-k keys per query instead of
    the matrix (``meta["pooled"]`` says so) and `weights` is empty for that layer."""

    weights: dict[str, torch.Tensor]
    heads: dict[str, list[int]]
    tokens: list[str]
    queries: range
    patch_grid: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    pooled: dict[str, Pooled] = field(default_factory=dict)

    @property
    def layers(self) -> list[str]:
        """The kept layer names, in the order their attention ran."""
        return list(self.heads)

    def _layer(self, layer: str | int) -> str:
        if isinstance(layer, int):
            try:
                return self.layers[layer]
            except IndexError:
                raise DeepscopeError(
                    f"layer index {layer} is out of range: {len(self.layers)} layers were kept"
                ) from None
        if layer not in self.heads:
            raise DeepscopeError(f"no attention kept for layer {layer!r}; kept: {self.layers}")
        return layer

    def _full(self, layer: str | int) -> str:
        name = self._layer(layer)
        if name not in self.weights:
            raise DeepscopeError(
                f"layer {name!r} was kept block-pooled (block={self.pooled[name].block}); "
                "read result.pooled[layer], or capture without block= (with queries= to "
                "bound memory) for the full matrix"
            )
        return name

    def __getitem__(self, layer: str | int) -> torch.Tensor:
        return self.weights[self._full(layer)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.heads)

    def __len__(self) -> int:
        return len(self.heads)

    def head_names(self, layer: str | int) -> list[str]:
        """``"<layer>/head<i>"`` for each kept head of `layer`."""
        name = self._layer(layer)
        return [f"{name}/head{h}" for h in self.heads[name]]

    def head(self, layer: str | int, head: int) -> torch.Tensor:
        """The (queries, keys) weights of head `head` (its index in the layer) of `layer`."""
        name = self._full(layer)
        if head not in self.heads[name]:
            raise DeepscopeError(
                f"head {head} of {name!r} was not captured (kept {self.heads[name]}); "
                "pass heads= including it"
            )
        return self.weights[name][self.heads[name].index(head)]

    def rollout(self, head_fusion: str = "mean", layers: list[str] | None = None) -> torch.Tensor:
        """Attention rollout over `layers` (default: every kept layer, in run order): heads
        fused by `head_fusion` ("mean", "max" or "min"), identity added, rows renormalised,
        layers multiplied through. Returns (tokens, tokens) float64."""
        names = [self._full(n) for n in (layers or self.layers)]
        return rollout([self.weights[n] for n in names], head_fusion)

    def flow(
        self,
        head_fusion: str = "mean",
        layers: list[str] | None = None,
        *,
        max_work: int = MAX_WORK,
    ) -> torch.Tensor:
        """Attention flow (Abnar & Zuidema 2020) over `layers` (default: every kept layer):
        (tokens, tokens) float64, row i the max-flow from output token i to each input token
        through ``0.5·A + 0.5·I`` per layer, rows normalised to 1. Exact, so bounded by
        `max_work` (tokens⁴ · layers; see `deepscope.analysis.attention.flow`)."""
        names = [self._full(n) for n in (layers or self.layers)]
        return attention_flow([self.weights[n] for n in names], head_fusion, max_work=max_work)

    def _full_weights(self) -> dict[str, torch.Tensor]:
        return {n: self.weights[self._full(n)] for n in self.layers}

    def head_stats(self) -> list[HeadStat]:
        """Per kept head: entropy (nats and normalised), mean attention distance (token
        positions; patch units when `patch_grid` is known) and mean mass on the first token;
        layer then head order."""
        return head_fns.head_stats(self._full_weights(), self.heads, self.queries, self.patch_grid)

    def sinks(self, threshold: float = 0.5, token: int = 0) -> list[Sink]:
        """Heads putting more than `threshold` of their mass on key `token` (mean over the
        other queries), strongest first, each with that fraction."""
        return head_fns.sinks(self._full_weights(), self.heads, self.queries, threshold, token)

    def cluster_heads(self, n_clusters: int = 1) -> HeadClusters:
        """Heads ordered by the cosine similarity of their maps (average linkage), with the
        similarity matrix and `n_clusters` cluster labels."""
        return head_fns.cluster_heads(self._full_weights(), self.heads, n_clusters)

    def _grid(self, grid: tuple[int, int] | None) -> tuple[int, int]:
        grid = grid or self.patch_grid
        if grid is None:
            raise DeepscopeError(
                "no patch grid is known for this model: pass patch_grid=(rows, cols), or "
                "capture with patch_grid_size="
            )
        return grid

    def patch_map(
        self,
        image_size: tuple[int, int] | None = None,
        *,
        layer: str | int = -1,
        head: int | None = None,
        method: str = "cls",
        patch_grid: tuple[int, int] | None = None,
        cls_index: int = 0,
    ) -> torch.Tensor:
        """For a ViT-style model: how much the [CLS] token (position `cls_index`) draws on
        each patch, on the (rows, cols) patch grid, upsampled bilinearly to `image_size`
        (height, width) when given. `method` "cls" reads `layer` (head `head`, or the heads'
        mean); "rollout" reads the rollout over every kept layer. float64."""
        grid = self._grid(patch_grid)
        if method == "rollout":
            row = self.rollout()[cls_index]
        elif method == "cls":
            if cls_index not in self.queries:
                raise DeepscopeError(f"query {cls_index} was not kept; capture without queries=")
            name = self._full(layer)  # a block-pooled layer has no per-query row
            row = self.matrix(name, head)[self.queries.index(cls_index)].to(torch.float64)
        else:
            raise DeepscopeError(f"method must be 'cls' or 'rollout', not {method!r}")
        values = patch_grid_map(row, grid)
        return upsample(values, image_size) if image_size is not None else values

    def patch_overlay(
        self,
        image: Any,
        *,
        layer: str | int = -1,
        head: int | None = None,
        method: str = "cls",
        patch_grid: tuple[int, int] | None = None,
        alpha: float = 0.5,
        cmap: str = "jet",
    ) -> Any:
        """`patch_map` at the size of `image` (PIL, HWC/CHW array or tensor), scaled to
        [0, 1], colormapped and blended over it: a PIL RGB image."""
        values = self.patch_map(
            image_size_of(image), layer=layer, head=head, method=method, patch_grid=patch_grid
        )
        return overlay_map(values, image, cmap=cmap, alpha=alpha)

    def matrix(
        self, layer: str | int = 0, head: int | None = None, head_fusion: str = "mean"
    ) -> torch.Tensor:
        """(queries, keys) of one head, or the kept heads fused by `head_fusion`; for a
        pooled layer the (query blocks, key blocks) block means."""
        name = self._layer(layer)
        if name in self.pooled:
            p = self.pooled[name]
            return p.mean[self.heads[name].index(head)] if head is not None else p.mean.mean(0)
        if head is not None:
            return self.head(name, head)
        return fuse_heads(self.weights[name], head_fusion)

    def picture(
        self,
        layer: str | int = 0,
        head: int | None = None,
        *,
        head_fusion: str = "mean",
        cmap: str = "viridis",
    ) -> Picture:
        """A heatmap of `layer` (head `head`, or the kept heads fused) over the tokens:
        queries down the side, keys along the bottom."""
        name = self._layer(layer)
        values = self.matrix(name, head, head_fusion).numpy().astype(np.float32)
        rows = [self.tokens[i] if i < len(self.tokens) else str(i) for i in self.queries]
        cols = self.tokens[: values.shape[1]]
        if name in self.pooled:
            b = self.pooled[name].block
            rows = [rows[i * b] for i in range(values.shape[0])]
            cols = [self.tokens[j * b] for j in range(values.shape[1])]
        which = f"head {head}" if head is not None else f"{head_fusion} of heads"
        grid = render_heatmap(
            values,
            row_labels=rows,
            col_labels=cols,
            cmap=cmap,
            title=f"{name} · {which}",
        )
        return Picture("attention", values, grid, layer=name, index=-1 if head is None else head)

    def image(self, layer: str | int = 0, head: int | None = None) -> np.ndarray:
        """`picture(layer, head)` as an (H, W, 3) uint8 array."""
        return self.picture(layer, head).image()

    def save(self, path: str | Path, layer: str | int = 0, head: int | None = None) -> Path:
        """``x.html``: the interactive Attention panel in one file; else `picture(layer, head)`
        as PNG (`deepscope.analysis.attention.show.save`). Returns the path."""
        from deepscope.analysis.attention.show import save

        return save(self, path, layer, head)

    def show(self, layer: str | int = 0, head: int | None = None) -> None:
        """In a notebook the interactive Attention panel, else `picture(layer, head)` in the
        system image viewer."""
        from deepscope.analysis.attention.show import show

        show(self, layer, head)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """A notebook shows this result as its dashboard panel (`deepscope.show`)."""
        from deepscope.notebook.show import mimebundle

        return mimebundle(self, **kwargs)

    def _repr_html_(self) -> str:
        from deepscope.analysis.attention.show import repr_html

        return repr_html(self)

    def log(self, run: Any, tag: str, step: int | None = None, **options: Any) -> int:
        """Log into `run` as the ``attention`` view kind (`show.write_attention`)."""
        from deepscope.analysis.attention.show import write_attention

        return write_attention(run, tag, self, step, **options)
