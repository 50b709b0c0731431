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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from deepscope.render.overlay import overlay as _overlay


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
        are reduced as the sum of absolute values."""
        a = self.attributions.detach().float()
        if a.ndim == 4:
            a = a.abs().sum(dim=1)
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

    def save(self, path: str | Path, index: int = 0, **overlay_options: Any) -> Path:
        """Write the overlay as PNG (images) or the scores as JSON (tokens); returns the path."""
        path = Path(path)
        if self.is_tokens:
            path.write_text(self.to_json(index), encoding="utf-8")
        else:
            path.write_bytes(self.png_bytes(index, **overlay_options))
        return path

    def show(self, index: int = 0, **overlay_options: Any) -> Image.Image | None:
        """Display in a notebook when IPython is available; otherwise return the PIL image."""
        if self.is_tokens:
            print(" ".join(f"{t}({s:+.3f})" for t, s in self.token_scores(index)))
            return None
        image = self.overlay(index=index, **overlay_options)
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return image
        if get_ipython() is None:
            return image
        display(image)
        return None

    def log(self, run: Any, tag: str, step: int | None = None, index: int = 0) -> None:
        """Store one input's overlay (PNG) or token scores (JSON) in `run` as an "attribution" blob."""
        if self.is_tokens:
            data, ext = self.to_json(index).encode("utf-8"), "json"
        else:
            data, ext = self.png_bytes(index), "png"
        run.log_blob("attribution", tag, data, ext=ext, meta=self.metadata(index), step=step)
