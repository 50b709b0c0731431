"""`atlas(model, layer, loader=None)`: per channel of a layer, the optimised image beside
the dataset inputs that excite it most.

The images come from one batched `visualize(model, channels(layer))`; the examples are each
channel's top-k inputs of the loader (`examples.py`: by the channel's spatial mean, the
quantity the images maximise, so the two are comparable; or by its maximum, as
`deepscope.unit_stats` ranks them, with its receptive-field crops). With `run=` the
atlas is logged as the ``atlas`` view kind (`deepscope.views.kinds.atlas`: the optimised
images and the examples as two PNG sprites, the activation values as JSON), which the
dashboard's Atlas panel draws and the graph inspector links from the layer's node.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.ReLU())
    >>> data = [torch.rand(4, 3, 8, 8)]
    >>> a = atlas(net, "0", data, steps=2, top_k=2, progress=False)
    >>> len(a.rows), a.rows[0].shape[2], len(a.scores)
    (2, 3, 2)
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont
from torch import nn

from deepscope.analysis.attribution.layer_search import channels_last
from deepscope.analysis.featureviz.examples import Measure, channel_scores, top_examples
from deepscope.analysis.featureviz.objectives import channels
from deepscope.analysis.featureviz.optimize import visualize
from deepscope.analysis.featureviz.result import FeatureViz

_PAD, _LABEL, _BG = 4, 14, (255, 255, 255)
_EMPTY = 128  # the grey around an example crop smaller than its tile
_MAX_COLUMNS = 16  # channels per sprite row


@dataclass
class Atlas:
    """`viz` (the optimised images), `examples[c]` (channel c's top inputs or crops, each
    (C, h, w) in the model's input space), `values[c]` (their scores by `measure`: the
    channel's spatial mean, what `visualize` maximises, or its maximum, as `unit_stats`
    ranks inputs; see `deepscope.analysis.featureviz.examples`), `scores[c]` (the same
    score of channel c's optimised image), `rows[c]` (the row picture (H, W, 3) uint8:
    optimised image, then examples) and `mean`/`std` (how examples are de-normalised)."""

    layer: str
    viz: FeatureViz
    examples: list[list[torch.Tensor]]
    values: list[list[float]]
    scores: list[float]
    rows: list[NDArray[np.uint8]]
    measure: Measure = "mean"
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def sprites(self) -> tuple[NDArray[np.uint8], NDArray[np.uint8] | None, int]:
        """The optimised images and the examples as the ``atlas`` view's two sprites
        (see `deepscope.views.kinds.atlas`) and the channels per sprite row."""
        pictures = self.viz.rgb()
        n, h, w, _ = pictures.shape
        cols = min(n, _MAX_COLUMNS)
        rows = math.ceil(n / cols)
        images = np.full((rows * h, cols * w, 3), 255, np.uint8)
        for c in range(n):
            r, q = divmod(c, cols)
            images[r * h : (r + 1) * h, q * w : (q + 1) * w] = pictures[c]
        k = max((len(e) for e in self.examples), default=0)
        if k == 0:
            return images, None, cols
        tiles = [[_to_rgb(e, self.mean, self.std) for e in row] for row in self.examples]
        eh = max(t.shape[0] for row in tiles for t in row)
        ew = max(t.shape[1] for row in tiles for t in row)
        examples = np.full((rows * eh, cols * k * ew, 3), _EMPTY, np.uint8)
        for c, row in enumerate(tiles):
            r, q = divmod(c, cols)
            for j, t in enumerate(row):
                y = r * eh + (eh - t.shape[0]) // 2
                x = (q * k + j) * ew + (ew - t.shape[1]) // 2
                examples[y : y + t.shape[0], x : x + t.shape[1]] = t
        return images, examples, cols

    def log(self, run: Any, tag: str = "atlas", step: int | None = None) -> None:
        """Log this atlas to `run` as one ``atlas`` view item (`deepscope.views.kinds.atlas`)
        under `tag`, joined by the layer name."""
        from deepscope.views.registry import write

        images, examples, cols = self.sprites()
        n = len(self.scores)
        k = max((len(e) for e in self.examples), default=0)
        h, w = self.viz.images.shape[-2:]
        eh = 0 if examples is None else examples.shape[0] // math.ceil(n / cols)
        ew = 0 if examples is None else examples.shape[1] // (cols * k)
        doc = {
            "channels": [
                {"channel": c, "score": _finite(self.scores[c]),
                 "values": [_finite(v) for v in self.values[c]]}
                for c in range(n)
            ]
        }  # fmt: skip
        meta = {
            "entry": self.layer,
            "layer": self.layer,
            "channels": n,
            "topK": k,
            "size": [int(h), int(w)],
            "exampleSize": [int(eh), int(ew)],
            "columns": cols,
            "steps": int(self.viz.settings.get("steps", 0)),
            "measure": self.measure,
        }
        parts = {"images": _png(images)}
        if examples is not None:
            parts["examples"] = _png(examples)
        write(run, "atlas", tag, json.dumps(doc).encode(), ext="json", meta=meta, parts=parts,
              step=step)  # fmt: skip

    def image(self) -> NDArray[np.uint8]:
        """Every row stacked, one channel per row."""
        width = max(r.shape[1] for r in self.rows)
        padded = [
            np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
            for r in self.rows
        ]
        return np.concatenate(padded, axis=0)

    def save(self, path: str | Path, *, dpi: float = 150, title: str | None = None) -> Path:
        """Write the atlas by the suffix of `path`; returns the path. ``.png``: the `image`
        picture, `dpi` recorded, `title` above it; ``.svg`` / ``.pdf``: the same rows as a
        figure for papers (`deepscope.render.tiles`): images at their own pixels, `dpi` of
        them per inch, row labels and `title` as vector outlines."""
        out = Path(path)
        if out.suffix.lower() == ".png":
            from deepscope.render.figure import save_figure

            return save_figure(self.image(), out, dpi=dpi, title=title)
        from deepscope.render.tiles import rows_scene

        pictures = self.viz.rgb()
        rows = [
            (f"{self.layer}:{c}", [pictures[c], *(_to_rgb(e, self.mean, self.std) for e in ex)])
            for c, ex in enumerate(self.examples[: len(pictures)])
        ]
        side = self.rows[0].shape[0] - _LABEL - _PAD if self.rows else 64
        return rows_scene(rows, title=title, dpi=dpi, tile=max(8, side)).save(out)


def _to_rgb(
    t: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None
) -> NDArray[np.uint8]:
    """A (C, h, w) model-space input as (h, w, 3) uint8: de-normalised by mean/std when
    given, else min-max scaled when outside [0, 1]."""
    x = t.detach().float().cpu()
    if mean is not None or std is not None:
        m = torch.as_tensor(0.0 if mean is None else mean).reshape(-1, 1, 1)
        s = torch.as_tensor(1.0 if std is None else std).reshape(-1, 1, 1)
        x = x * s + m
    elif x.numel() and (x.min() < 0 or x.max() > 1):
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    x = x.clamp(0, 1)
    x = (
        x.expand(3, -1, -1)
        if x.shape[0] == 1
        else x[:3]
        if x.shape[0] >= 3
        else x.mean(0, keepdim=True).expand(3, -1, -1)
    )
    return np.asarray((x.permute(1, 2, 0).numpy() * 255).round(), dtype=np.uint8)


def _finite(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _png(rgb: NDArray[np.uint8]) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _tile(rgb: NDArray[np.uint8], side: int) -> Image.Image:
    img = Image.fromarray(rgb)
    scale = side / max(img.size)
    size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
    return img.resize(size, Image.Resampling.NEAREST)


def _row(label: str, tiles: list[NDArray[np.uint8]], side: int) -> NDArray[np.uint8]:
    width = _PAD + len(tiles) * (side + _PAD) + (_PAD if len(tiles) > 1 else 0)
    canvas = Image.new("RGB", (width, _LABEL + side + _PAD), _BG)
    draw, font = ImageDraw.Draw(canvas), ImageFont.load_default()
    draw.text((_PAD, 1), label, fill=(30, 30, 30), font=font)
    x = _PAD
    for i, rgb in enumerate(tiles):
        canvas.paste(_tile(rgb, side), (x, _LABEL))
        x += side + _PAD + (_PAD if i == 0 else 0)  # a gap after the optimised image
    return np.asarray(canvas, dtype=np.uint8).copy()


def atlas(
    model: nn.Module,
    layer: str,
    loader: Iterable[Any] | None = None,
    *,
    top_k: int = 4,
    steps: int = 128,
    measure: Measure = "mean",
    size: Any = None,
    run: Any = None,
    tile: int = 64,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    seed: int = 0,
    progress: bool = True,
    **options: Any,
) -> Atlas:
    """The neuron atlas of `layer`: `visualize(model, channels(layer), steps, size, ...)`
    beside each channel's `top_k` dataset examples over `loader` (none when `loader` is
    None), ranked by `measure`: ``"mean"`` (whole inputs, scored like the optimised images)
    or ``"max"`` (`unit_stats`' receptive-field crops). With `run` (a `deepscope.Run`) it
    is logged as the ``atlas`` view (tag ``"atlas"``; `Atlas.log` for another tag or a
    step). Other options go to `visualize`."""
    last = channels_last(model)
    if size is None and loader is not None:  # the dataset's image size
        first = next(iter(loader))
        x = torch.as_tensor(first[0] if isinstance(first, (tuple, list)) else first)
        if x.ndim == 4:
            size = (x.shape[3], x.shape[1], x.shape[2]) if last else tuple(x.shape[1:])
    viz = visualize(
        model,
        channels(layer),
        steps=steps,
        size=size,
        seed=seed,
        mean=mean,
        std=std,
        progress=progress,
        **options,
    )
    n = viz.images.shape[0]
    examples: list[list[torch.Tensor]] = [[] for _ in range(n)]
    values: list[list[float]] = [[] for _ in range(n)]
    if loader is not None:
        found = top_examples(model, layer, loader, top_k, measure, last, progress)
        examples[: len(found.items)] = found.items[:n]
        values[: len(found.values)] = found.values[:n]
    pictures = viz.rgb()
    rows = [
        _row(
            f"{layer}:{c}",
            [pictures[c]] + [_to_rgb(e, mean, std) for e in examples[c]],
            tile,
        )
        for c in range(n)
    ]
    fed = viz.images.permute(0, 2, 3, 1) if last else viz.images
    own = channel_scores(model, layer, fed, measure, last)
    scores = [float(own[c, c]) for c in range(min(own.shape))]
    result = Atlas(layer, viz, examples, values, scores, rows, measure, mean, std)
    if run is not None:
        result.log(run)
    return result


__all__ = ["Atlas", "atlas"]
