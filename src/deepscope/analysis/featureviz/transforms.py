"""Transformation robustness sized to the input: pad, jitter, random scale and random
rotation, applied as one affine resampling per image (so the model sees the input size).

Lucid's defaults are for 224-pixel images (pad 12, jitter 8, ±10 % scale, ±10°); here pad
and jitter are fractions of the image side (at least one pixel), so an 8×8 digit gets a
1-pixel pad and jitter, not 12. Every image draws from its own generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Transforms:
    """Per-step random transforms: `pad` and `jitter` in pixels, `scale` (± fraction),
    `rotate` (± degrees). `Transforms.standard((h, w))` sizes them to the input."""

    pad: int = 0
    jitter: int = 0
    scale: float = 0.0
    rotate: float = 0.0

    @classmethod
    def standard(cls, size: tuple[int, int]) -> Transforms:
        side = max(size)
        return cls(
            pad=max(1, round(0.055 * side)),
            jitter=max(1, round(0.04 * side)),
            scale=0.1,
            rotate=10.0,
        )

    @property
    def active(self) -> bool:
        return bool(self.pad or self.jitter or self.scale or self.rotate)

    def __call__(self, images: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """Transformed copies of `images` (B, C, H, W); one random draw per image."""
        if not self.active:
            return images
        b, _, h, w = images.shape
        p = self.pad
        padded = F.pad(images, (p, p, p, p), mode="constant", value=0.5) if p else images
        ph, pw = h + 2 * p, w + 2 * p
        draws = torch.stack([torch.rand(4, generator=g) for g in generators[:b]])  # (B, 4)
        dx = torch.round((draws[:, 0] * 2 - 1) * self.jitter)
        dy = torch.round((draws[:, 1] * 2 - 1) * self.jitter)
        s = 1 + (draws[:, 2] * 2 - 1) * self.scale
        a = (draws[:, 3] * 2 - 1) * math.radians(self.rotate)
        cos, sin = torch.cos(a) / s, torch.sin(a) / s
        # output normalised coords -> pixels (W/2, H/2) -> rotate/scale -> padded normalised
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = cos * w / pw
        theta[:, 0, 1] = -sin * h / pw
        theta[:, 1, 0] = sin * w / ph
        theta[:, 1, 1] = cos * h / ph
        theta[:, 0, 2] = dx * 2 / pw
        theta[:, 1, 2] = dy * 2 / ph
        theta = theta.to(images.device, images.dtype)
        grid = F.affine_grid(theta, [b, images.shape[1], h, w], align_corners=False)
        return F.grid_sample(
            padded, grid, mode="bilinear", padding_mode="border", align_corners=False
        )


def resolve(spec: str | Transforms | None, size: tuple[int, int]) -> Transforms:
    """ "standard" (sized to `size`), "none"/None, or a `Transforms`."""
    if isinstance(spec, Transforms):
        return spec
    if spec is None or spec == "none":
        return Transforms()
    if spec == "standard":
        return Transforms.standard(size)
    raise ValueError(f"transforms must be 'standard', 'none' or a Transforms, not {spec!r}")


__all__ = ["Transforms", "resolve"]
