"""Feature maps: one input's output of one layer as a picture.

A spatial output (units × H × W) is a grid of channel tiles; a sequence output (tokens ×
units) a token × unit heatmap; any other output a 1-D strip of its units. `Picture` is the
result: `.image()` (numpy RGB), `.save(path)` (PNG), `.show()` (notebook, else a viewer).

Example:
    >>> import torch
    >>> p = feature_maps(torch.rand(1, 4, 8, 8), unit_axis=1, layer="conv")
    >>> p.kind, p.image().shape[2]
    ('grid', 3)
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from deepscope.render.grid import Grid, render_grid, render_heatmap

__all__ = ["Picture", "feature_maps"]


@dataclass
class Picture:
    """A rendered activation picture and the numbers behind it.

    `kind` is "grid" (channel tiles), "sequence" (tokens × units), "strip" (units) or
    "states" (units × time, RNN states); `values` the array drawn (C, H, W) or 2-D;
    `boxes` where each tile (or the heatmap) lies in `image()`.
    """

    kind: str
    values: NDArray[np.float32]
    grid: Grid
    layer: str = ""
    index: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def boxes(self) -> list[tuple[int, int, int, int]]:
        """Each tile's (x0, y0, x1, y1) in the image."""
        return self.grid.boxes

    def image(self) -> NDArray[np.uint8]:
        """The picture as an (H, W, 3) uint8 array."""
        return self.grid.pixels

    def save(self, path: str | Path, *, dpi: float = 150) -> Path:
        """Write the picture as PNG, SVG or PDF by the suffix (`render.figure`); returns the
        path."""
        from deepscope.render.figure import save_figure

        return save_figure(self.grid.pixels, path, dpi=dpi)

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(self.grid.pixels).save(buf, format="PNG")
        return buf.getvalue()

    def show(self) -> None:
        """Display in a notebook (IPython), else open the system image viewer."""
        try:
            from IPython.display import Image as IPyImage
            from IPython.display import display
        except ImportError:
            Image.fromarray(self.grid.pixels).show()
            return
        display(IPyImage(data=self._repr_png_()))  # type: ignore[no-untyped-call]


def _tokens(tokens: Sequence[str] | None, n: int) -> list[str]:
    if tokens is None:
        return [str(i) for i in range(n)]
    if len(tokens) != n:
        raise ValueError(f"got {len(tokens)} tokens for a sequence of {n} positions")
    return [str(t) for t in tokens]


def feature_maps(
    tensor: torch.Tensor,
    *,
    unit_axis: int,
    index: int = 0,
    layer: str = "",
    scale: str = "shared",
    cmap: str = "viridis",
    max_tiles: int = 64,
    tokens: Sequence[str] | None = None,
) -> Picture:
    """Draw item `index` of a batched layer output.

    `unit_axis` is the axis (of the batched tensor) that holds the channels. Outputs with
    two spatial axes give a grid of at most `max_tiles` channel tiles (the first ones; the
    picture's `meta` says how many there are); one non-unit axis gives a tokens × units
    heatmap (`tokens` label the rows); none gives a strip of units.
    """
    if tensor.ndim == 0:
        raise ValueError(f"layer {layer!r} output a scalar: nothing to draw")
    n = int(tensor.shape[0])
    if not -n <= index < n:
        raise IndexError(f"index {index} is out of range for the {n} inputs kept")
    item = tensor.detach()[index].float().cpu()
    axis = (unit_axis % tensor.ndim) - 1
    units = item.movedim(axis, 0) if item.ndim else item.reshape(1)
    values = np.asarray(units.numpy(), dtype=np.float32)
    title = f"{layer} [{index}]" if layer else None
    meta: dict[str, Any] = {"units": int(values.shape[0])}
    if values.ndim == 3:
        shown = values[:max_tiles]
        meta["shown"] = int(shown.shape[0])
        grid = render_grid(shown, scale=scale, cmap=cmap, title=title)
        return Picture("grid", shown, grid, layer, index, meta)
    if values.ndim == 2:
        matrix = values.T  # tokens × units
        rows = _tokens(tokens, matrix.shape[0])
        grid = render_heatmap(matrix, row_labels=rows, cmap=cmap, title=title)
        return Picture("sequence", matrix, grid, layer, index, meta)
    if values.ndim == 1:
        strip = values[None, :]
        grid = render_heatmap(strip, cmap=cmap, min_cell=12, title=title)
        return Picture("strip", strip, grid, layer, index, meta)
    flat = values.reshape(values.shape[0], values.shape[1], -1)
    meta["note"] = "spatial axes beyond two are flattened into the last"
    grid = render_grid(flat[:max_tiles], scale=scale, cmap=cmap, title=title)
    return Picture("grid", flat[:max_tiles], grid, layer, index, meta)
