"""Image parameterisations: pixels, or a Fourier spectrum with 1/f scaling and decorrelated
colour (Lucid's `fft_image` + `to_valid_rgb`), mapped by a sigmoid into [0, 1].

Every image of a batch is initialised from its own generator, so image i is the same
whatever else is optimised beside it.
"""

from __future__ import annotations

import torch

#: square root of ImageNet's RGB colour correlation (Lucid's `color_correlation_svd_sqrt`)
COLOR_CORRELATION_SVD_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float32
)
PARAMS = ("fourier", "pixels")


def _freqs(h: int, w: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


class ImageParam(torch.nn.Module):
    """`forward()` gives (B, C, H, W) images in [0, 1] from the learnable tensor `raw`."""

    scale: torch.Tensor
    color: torch.Tensor

    def __init__(
        self,
        kind: str,
        batch: int,
        channels: int,
        size: tuple[int, int],
        generators: list[torch.Generator],
        device: torch.device,
        sd: float = 0.01,
        decay: float = 1.0,
    ) -> None:
        super().__init__()
        if kind not in PARAMS:
            raise ValueError(f"param must be one of {', '.join(PARAMS)}, not {kind!r}")
        self.kind, self.size, self.channels = kind, size, channels
        h, w = size
        shape = (channels, h, w // 2 + 1, 2) if kind == "fourier" else (channels, h, w)
        raw = torch.stack([torch.randn(shape, generator=g) * sd for g in generators[:batch]])
        self.raw = torch.nn.Parameter(raw.to(device))
        if kind == "fourier":
            scale = 1.0 / torch.clamp(_freqs(h, w), min=1.0 / max(h, w)) ** decay
            self.register_buffer("scale", scale[None, None, :, :, None].to(device))
        color = COLOR_CORRELATION_SVD_SQRT if channels == 3 else torch.eye(channels)
        norms = color.norm(dim=0).max() if channels == 3 else torch.tensor(1.0)
        self.register_buffer("color", (color / norms).to(device))

    def forward(self) -> torch.Tensor:
        h, w = self.size
        if self.kind == "fourier":
            spectrum = torch.view_as_complex((self.scale * self.raw).contiguous())
            image = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") / 4.0
        else:
            image = self.raw
        if self.channels == 3:  # decorrelated colour space -> RGB
            image = torch.einsum("bchw,dc->bdhw", image, self.color)
        return torch.sigmoid(image)


__all__ = ["COLOR_CORRELATION_SVD_SQRT", "PARAMS", "ImageParam"]
