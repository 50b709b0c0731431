"""Colormaps as 256-entry uint8 lookup tables, built from a few anchors with numpy only.

Jet is matplotlib's piecewise-linear definition; viridis and inferno are 33 evenly spaced
anchors of matplotlib's tables, linearly interpolated (within 5/255 of the originals).

Example:
    >>> import numpy as np
    >>> apply_colormap(np.array([[0.0, 1.0]]), "viridis").shape
    (1, 2, 3)
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import NDArray

_JET = {
    "red": ((0.0, 0.0), (0.35, 0.0), (0.66, 1.0), (0.89, 1.0), (1.0, 0.5)),
    "green": ((0.0, 0.0), (0.125, 0.0), (0.375, 1.0), (0.64, 1.0), (0.91, 0.0), (1.0, 0.0)),
    "blue": ((0.0, 0.5), (0.11, 1.0), (0.34, 1.0), (0.65, 0.0), (1.0, 0.0)),
}

_ANCHORS = {
    "viridis": (
        "440154 470d60 48186a 482374 472d7b 453781 424086 3e4989 3b528b 375b8d 33638d 2f6b8e "
        "2c728e 297a8e 26828e 23898e 21918c 1f988b 1fa088 22a785 28ae80 32b67a 3fbc73 4ec36b "
        "5ec962 70cf57 84d44b 98d83e addc30 c2df23 d8e219 ece51b fde725"
    ),
    "inferno": (
        "000004 040312 0b0724 150b37 210c4a 2f0a5b 3d0965 4a0c6b 57106e 64156e 71196e 7d1e6d "
        "8a226a 972766 a32c61 b0315b bc3754 c73e4c d24644 db503b e45a31 eb6628 f1731d f68013 "
        "f98e09 fb9d07 fcac11 fbbc21 f9cb35 f5db4c f2ea69 f3f68a fcffa4"
    ),
    # diverging (ColorBrewer RdBu reversed): blue < 0, near-white at the middle, red > 0
    "rdbu": "053061 2166ac 4393c3 92c5de d1e5f0 f7f7f7 fddbc7 f4a582 d6604d b2182b 67001f",
}

COLORMAPS = ("jet", "viridis", "inferno", "gray", "rdbu")


@cache
def lut(name: str) -> NDArray[np.uint8]:
    """The (256, 3) uint8 table of colormap `name` (one of `COLORMAPS`)."""
    t = np.linspace(0.0, 1.0, 256)
    if name == "jet":
        channels = [
            np.interp(t, [p[0] for p in _JET[c]], [p[1] for p in _JET[c]])
            for c in ("red", "green", "blue")
        ]
        table = np.stack(channels, axis=1) * 255.0
    elif name in _ANCHORS:
        anchors = np.array(
            [[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in _ANCHORS[name].split()],
            dtype=np.float64,
        )
        xs = np.linspace(0.0, 1.0, len(anchors))
        table = np.stack([np.interp(t, xs, anchors[:, c]) for c in range(3)], axis=1)
    elif name == "gray":
        table = np.repeat(t[:, None] * 255.0, 3, axis=1)
    else:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    result: NDArray[np.uint8] = np.clip(np.rint(table), 0, 255).astype(np.uint8)
    result.setflags(write=False)
    return result


def apply_colormap(values: NDArray[np.floating], name: str = "jet") -> NDArray[np.uint8]:
    """Map values in [0, 1] (clipped; NaN → 0) to RGB uint8, shape `values.shape + (3,)`."""
    v = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    index = np.clip(np.rint(v * 255.0), 0, 255).astype(np.intp)
    return lut(name)[index]
