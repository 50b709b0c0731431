"""`FeatureViz`: the optimised images, the objective per step, the settings; a PNG grid."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from deepscope.render.grid import upscale

_PAD, _LABEL = 6, 14


@dataclass
class FeatureViz:
    """What `visualize` returns.

    `images` (N, C, H, W) are what the model was fed (after `mean`/`std` or `preprocess`);
    `pixels` (N, C, H, W) the same images in [0, 1] before that, for display; `values`
    (steps, N) the objective of each image at each step; `labels` one name per image.
    """

    images: torch.Tensor
    pixels: torch.Tensor
    values: NDArray[np.float64]
    labels: list[str]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def history(self) -> NDArray[np.float64]:
        """The summed objective per step (steps,)."""
        return np.asarray(self.values.sum(axis=1), dtype=np.float64)

    def rgb(self) -> NDArray[np.uint8]:
        """(N, H, W, 3) uint8 pictures: RGB as is, one channel as grey, other channel
        counts as the grey mean of their channels."""
        p = self.pixels.detach().float().cpu().clamp(0, 1)
        if p.shape[1] != 3:
            p = p.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        return np.asarray((p.permute(0, 2, 3, 1).numpy() * 255).round(), dtype=np.uint8)

    def grid(self, min_tile: int = 64, columns: int | None = None) -> NDArray[np.uint8]:
        """A labelled grid of every image (nearest-neighbour upscaled, crisp pixels)."""
        tiles = self.rgb()
        n, h, w, _ = tiles.shape
        f = max(1, math.ceil(min_tile / max(h, w)))
        cols = columns or max(1, math.ceil(math.sqrt(n)))
        rows = math.ceil(n / cols)
        th, tw = h * f, w * f
        canvas = Image.new(
            "RGB", (_PAD + cols * (tw + _PAD), _PAD + rows * (th + _LABEL + _PAD)), (255, 255, 255)
        )
        draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
        for i in range(n):
            x0 = _PAD + (i % cols) * (tw + _PAD)
            y0 = _PAD + (i // cols) * (th + _LABEL + _PAD) + _LABEL
            draw.text(
                (x0, y0 - _LABEL + 1),
                self.labels[i][: max(4, tw // 6)],
                fill=(30, 30, 30),
                font=font,
            )
            canvas.paste(Image.fromarray(upscale(tiles[i], f, f)), (x0, y0))
        return np.asarray(canvas, dtype=np.uint8).copy()

    def save(
        self,
        path: str | Path,
        *,
        dpi: float = 150,
        title: str | None = None,
        min_tile: int = 64,
        columns: int | None = None,
    ) -> Path:
        """Write the grid by the suffix of `path`; returns the path.

        ``.png``: the `grid` picture (what a notebook shows), `dpi` recorded, `title` above
        it. ``.svg`` / ``.pdf``: the same grid as a figure for papers
        (`deepscope.render.tiles`): each image at its own pixels (crisp, scaled up by a whole
        factor to at least `min_tile` pixels, `dpi` of them per inch) under its caption,
        captions and `title` as vector outlines.
        """
        out = Path(path)
        if out.suffix.lower() == ".png":
            from deepscope.render.figure import save_figure

            return save_figure(self.grid(min_tile, columns), out, dpi=dpi, title=title)
        from deepscope.render.tiles import grid_scene

        tiles = self.rgb()
        side = max(tiles.shape[1:3]) if len(tiles) else min_tile
        tile = side * max(1, math.ceil(min_tile / side))
        cells = list(zip(self.labels, tiles, strict=False))
        return grid_scene(cells, title=title, dpi=dpi, tile=tile, columns=columns).save(out)

    def show(self) -> Any:
        """Display the grid in a notebook (IPython), else return it as a PIL image."""
        picture = Image.fromarray(self.grid())
        try:
            from IPython.display import display
        except ImportError:
            return picture
        display(picture)  # type: ignore[no-untyped-call]
        return None

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(self.grid()).save(buf, format="PNG")
        return buf.getvalue()


__all__ = ["FeatureViz"]
