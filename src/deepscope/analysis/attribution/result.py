"""`AttributionResult`: an attribution map that can be normalised, overlaid, saved and logged.

Example:
    >>> import torch
    >>> r = AttributionResult(torch.rand(1, 8, 8), method="grad_cam", target=3)
    >>> r.normalized.shape, r.overlay(None).size
    ((1, 8, 8), (8, 8))
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from deepscope.render.colormap import apply_colormap
from deepscope.render.overlay import overlay as _overlay
from deepscope.render.overlay import to_rgb_array
from deepscope.views.registry import write as view_write


@dataclass
class AttributionResult:
    """What an attribution method returns.

    `attributions` is the raw map: input-shaped (B, C, H, W) for gradient methods on images,
    (B, H, W) for CAMs (after ReLU, upsampled to the input, not rescaled), (B, T) per-token
    scores for layer attribution through an embedding. `normalized` rescales each input's
    2-D (or per-token) map to [0, 1].
    """

    attributions: torch.Tensor
    method: str
    target: Any = None
    layer: str | None = None
    inputs: torch.Tensor | None = None
    tokens: list[list[str]] | None = None
    delta: torch.Tensor | None = None
    layer_map: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def raw(self) -> NDArray[np.float32]:
        """The raw attributions as a float32 numpy array."""
        return np.asarray(self.attributions.detach().float().cpu().numpy(), dtype=np.float32)

    @property
    def is_tokens(self) -> bool:
        """True for per-token scores (B, T)."""
        return self.attributions.ndim == 2

    def heat(self) -> torch.Tensor:
        """Per-input 2-D map (B, H, W), or (B, T) for tokens: channels of input-shaped maps
        are reduced as the sum of absolute values (the last dim when `meta["layout"]` is
        "channels_last", as for Keras models)."""
        a = self.attributions.detach().float()
        if a.ndim == 4:
            a = a.abs().sum(dim=-1 if self.meta.get("layout") == "channels_last" else 1)
        return a

    @property
    def normalized(self) -> NDArray[np.float32]:
        """Each input's heat min-max scaled to [0, 1] (all zeros where the map is flat)."""
        h = self.heat()
        flat = h.reshape(h.shape[0], -1)
        lo = flat.min(dim=1, keepdim=True).values
        hi = flat.max(dim=1, keepdim=True).values
        scaled = (flat - lo) / (hi - lo).clamp_min(1e-12)
        return np.asarray(scaled.reshape(h.shape).cpu().numpy(), dtype=np.float32)

    def token_scores(self, index: int = 0) -> list[tuple[str, float]]:
        """`(token, score)` pairs of one input (tokens are ids as text when none were given)."""
        if not self.is_tokens:
            raise ValueError("this result holds an image map, not per-token scores")
        scores = self.raw[index]
        names = self.tokens[index] if self.tokens else [str(i) for i in range(len(scores))]
        return [(str(t), float(s)) for t, s in zip(names, scores, strict=True)]

    def overlay(
        self, image: Any = "input", cmap: str = "jet", alpha: float = 0.5, index: int = 0
    ) -> Image.Image:
        """The `index`-th map colormapped over `image` (default: the input the map explains;
        None: the heatmap alone)."""
        if self.is_tokens:
            raise ValueError("per-token results have no image overlay; use token_scores()")
        if isinstance(image, str) and image == "input":
            image = None if self.inputs is None or self.inputs.ndim != 4 else self.inputs[index]
        return _overlay(image, self.normalized[index], cmap=cmap, alpha=alpha)

    def metadata(self, index: int = 0) -> dict[str, Any]:
        """Method, target, layer and input index, as stored with a logged result."""
        target = self.target
        if isinstance(target, list) and index < len(target):
            target = target[index]
        return {
            "method": self.method,
            "target": target,
            "layer": self.layer,
            "input_index": index,
            **self.meta,
        }

    def to_json(self, index: int = 0) -> str:
        """Per-token scores of one input as JSON (tokens and scores)."""
        pairs = self.token_scores(index)
        doc = {
            **self.metadata(index),
            "tokens": [t for t, _ in pairs],
            "scores": [s for _, s in pairs],
            "normalized": [float(v) for v in self.normalized[index]],
        }
        return json.dumps(doc)

    def png_bytes(self, index: int = 0, **overlay_options: Any) -> bytes:
        """The overlay of one input as PNG bytes."""
        buffer = io.BytesIO()
        self.overlay(index=index, **overlay_options).save(buffer, format="PNG")
        return buffer.getvalue()

    def save(
        self,
        path: str | Path,
        index: int = 0,
        *,
        dpi: float = 150,
        title: str | None = None,
        **overlay_options: Any,
    ) -> Path:
        """Write input `index`'s overlay as PNG, SVG or PDF at `dpi` (`render.figure`), the
        whole result as a self-contained HTML page (``.html``: the attribution panel,
        offline), or the scores as JSON (tokens); returns the path. A PNG is the overlay
        alone unless `title` is given; SVG and PDF carry `title` (default: the method and
        target) above it."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".html", ".htm"):
            from deepscope.notebook.show import save_html

            return save_html(self, path)
        if suffix in (".svg", ".pdf", ".png") and not self.is_tokens:
            from deepscope.render.figure import save_figure

            if title is None and suffix != ".png":
                title = f"{self.method} · target {self.metadata(index)['target']}"
            image = self.overlay(index=index, **overlay_options)
            return save_figure(image, path, dpi=dpi, title=title)
        if self.is_tokens:
            path.write_text(self.to_json(index), encoding="utf-8")
        else:
            path.write_bytes(self.png_bytes(index, **overlay_options))
        return path

    def show(self, index: int = 0, **overlay_options: Any) -> Image.Image | None:
        """In IPython: the attribution panel as a notebook widget (`deepscope.show`; a PNG
        fallback for nbconvert). Elsewhere: the PIL image of input `index`'s overlay
        (token scores are printed)."""
        try:
            from IPython import get_ipython
        except ImportError:
            get_ipython = None
        if get_ipython is not None and get_ipython() is not None:
            from deepscope.notebook.show import show

            show(self)
            return None
        if self.is_tokens:
            print(" ".join(f"{t}({s:+.3f})" for t, s in self.token_scores(index)))
            return None
        return self.overlay(index=index, **overlay_options)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """A notebook shows this result as its dashboard panel (`deepscope.show`)."""
        from deepscope.notebook.show import mimebundle

        return mimebundle(self, **kwargs)

    def log(
        self,
        run: Any,
        tag: str,
        step: int | None = None,
        index: int | None = None,
        *,
        items: Sequence[int] | None = None,
        labels: Any = None,
        predictions: Any = None,
        cmap: str = "jet",
        alpha: float = 0.5,
    ) -> None:
        """Store every input's overlay (PNG) or token scores (JSON) in `run` as "attribution" blobs.

        Written through the ``attribution`` view kind (`deepscope.views.kinds.attribution`):
        one item per input of the batch (or per index in `items`; `index` logs one), its
        meta checked against the kind's schema, with parts: the raw heat map (or token
        scores) as a float32 "attribution_heat" array and, for images, the input as an
        "attribution_input" PNG, so the dashboard shows the input beside its overlay.
        `labels` (true classes) and `predictions` (predicted classes), one per input of the whole batch, travel in each item's meta with the
        method, target, layer, colormap (`colorbar`: 11 "#rrggbb" stops from 0 to 1) and the
        map's raw range (`heatMin`, `heatMax`).

        Example:
            >>> result.log(run, "grad_cam", step=100, predictions=logits.argmax(1))  # doctest: +SKIP
        """
        batch = int(self.attributions.shape[0])
        chosen = [index] if items is None and index is not None else items
        picked = list(range(batch)) if chosen is None else [int(i) for i in chosen]
        for i in picked:
            if not 0 <= i < batch:
                raise ValueError(f"item {i} out of range for a batch of {batch} inputs")
        per_label = _per_item(labels, batch, "labels")
        per_pred = _per_item(predictions, batch, "predictions")
        heat_maps = self.heat().cpu().numpy().astype(np.float32)
        heat = self.heat().reshape(batch, -1)
        stops = [
            "#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb))
            for rgb in apply_colormap(np.linspace(0.0, 1.0, 11)[None, :], cmap)[0]
        ]
        for i in picked:
            meta: dict[str, Any] = {**self.metadata(i), "batch": batch}
            if per_label is not None:
                meta["label"] = per_label[i]
            if per_pred is not None:
                meta["pred"] = per_pred[i]
            row = heat[i][torch.isfinite(heat[i])]
            if row.numel():
                meta["heatMin"], meta["heatMax"] = float(row.min()), float(row.max())
            if self.is_tokens:
                data, ext = self.to_json(i).encode("utf-8"), "json"
            else:
                data, ext = self.png_bytes(i, cmap=cmap, alpha=alpha), "png"
                meta.update(cmap=cmap, alpha=alpha, colorbar=stops)
            parts: dict[str, Any] = {"heat": heat_maps[i]}
            if not self.is_tokens and self.inputs is not None and self.inputs.ndim == 4:
                buffer = io.BytesIO()
                Image.fromarray(to_rgb_array(self.inputs[i]), mode="RGB").save(buffer, "PNG")
                parts["input"] = buffer.getvalue()
            view_write(run, "attribution", tag, data, ext=ext, meta=meta, parts=parts, step=step)


def _per_item(values: Any, batch: int, name: str) -> list[int] | None:
    """One int per input of the batch from a tensor, array or sequence (None stays None)."""
    if values is None:
        return None
    if hasattr(values, "detach"):
        values = values.detach().cpu().reshape(-1).tolist()
    out = [int(v) for v in np.asarray(values).reshape(-1)]
    if len(out) != batch:
        raise ValueError(f"got {len(out)} {name} for a batch of {batch} inputs")
    return out
