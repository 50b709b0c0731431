"""Turn a tensor, array or PIL image into PNG bytes, or say clearly why not (docs/threats.md N5).

Every check happens here, in the caller's thread, so a bad image fails at log time and
never later in the dashboard.

Rules:
- Layouts: ``HW``, ``CHW``, ``HWC``, and ``NCHW``/``NHWC`` (N > 1 is tiled into a grid,
  described by ``meta["grid"]``). Without ``dataformats`` the layout is inferred from
  which end has 1, 3 or 4 channels; an ambiguous shape such as ``(3, 3, 3)`` raises.
- Channels: 1 (grey), 2 (grey + alpha), 3 (RGB), 4 (RGBA).
- Floats (any precision, bf16/fp16 too) must lie in [0, 1] and are scaled by 255; NaN
  and ±Inf pixels become 0 and are counted in ``meta["nan_pixels"]`` /
  ``meta["inf_pixels"]``. Floats above 1 (an image in [0, 255]) or below 0 raise.
- uint8 is taken as is; bool becomes 0/255; uint16 is scaled down to 8 bits (divided by
  257, ``meta["source_dtype"] = "uint16"``); other integers must lie in [0, 255].
  Complex values raise.
- More than ``PIL.Image.MAX_IMAGE_PIXELS`` pixels (or 50,000 × 50,000 when Pillow's
  check is off) raise before any pixel is converted.

Example:
    >>> import numpy as np
    >>> png, meta = encode_image(np.zeros((8, 6), dtype=np.uint8))
    >>> png[:4], meta
    (b'\\x89PNG', {'width': 6, 'height': 8, 'channels': 1})
"""

from __future__ import annotations

import io
import math
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

_LAYOUTS = ("HW", "CHW", "HWC", "NCHW", "NHWC")
_CHANNEL_COUNTS = (1, 3, 4)
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_FLOAT_TOLERANCE = 1e-3
_HINT = (
    f"pass dataformats= one of {', '.join(_LAYOUTS)} "
    "(e.g. encode_image(x, dataformats='HWC') or run.log_image(tag, x, dataformats='HWC'))"
)


def max_pixels() -> int:
    """The largest image accepted, in pixels (Pillow's decompression-bomb limit)."""
    limit = Image.MAX_IMAGE_PIXELS
    return int(limit) if limit else 50_000 * 50_000


def encode_image(image: Any, *, dataformats: str | None = None) -> tuple[bytes, dict[str, Any]]:
    """Encode `image` as PNG; return the bytes and ``{"width", "height", "channels", ...}``.

    `image` is a torch tensor, a numpy array or a PIL image; `dataformats` names the
    layout of a tensor or array (``"CHW"``, ``"HWC"``, ``"HW"``, ``"NCHW"``, ``"NHWC"``).
    Raises `ValueError` with what to change for a shape, dtype, value range or size it
    cannot show faithfully.
    """
    meta: dict[str, Any] = {}
    if isinstance(image, Image.Image):
        pil = _from_pil(image, meta)
    else:
        pixels = _pixels(image, dataformats, meta)
        pil = Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    channels = len(pil.getbands())
    return buf.getvalue(), {"width": pil.width, "height": pil.height, "channels": channels, **meta}


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"image has no pixels (height {height}, width {width})")
    if height * width > max_pixels():
        raise ValueError(
            f"image of {width}x{height} = {height * width:,} pixels is larger than the "
            f"{max_pixels():,}-pixel limit (PIL.Image.MAX_IMAGE_PIXELS); downscale it first"
        )


def _from_pil(img: Image.Image, meta: dict[str, Any]) -> Image.Image:
    _check_size(img.height, img.width)
    if img.mode in ("L", "LA", "RGB", "RGBA"):
        return img
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        pixels = _pixels(np.asarray(img), "HW", meta)
        return Image.fromarray(pixels[:, :, 0])
    has_alpha = "A" in img.getbands() or "transparency" in img.info
    return img.convert("RGBA" if has_alpha else ("L" if img.mode == "1" else "RGB"))


def _to_numpy(image: Any) -> npt.NDArray[Any]:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(image, torch.Tensor):
        t = image.detach()
        if t.is_complex():
            _raise_complex(str(t.dtype))
        if t.dtype in (torch.bfloat16, torch.float16):
            t = t.to(torch.float32)
        return np.asarray(t.cpu().numpy())
    return np.asarray(image)


def _raise_complex(dtype: str) -> None:
    raise ValueError(
        f"cannot show a complex image ({dtype}): log abs(x), x.real or the phase instead"
    )


def _layout(shape: tuple[int, ...], dataformats: str | None) -> str:
    if dataformats is not None:
        fmt = dataformats.upper()
        if fmt not in _LAYOUTS:
            raise ValueError(
                f"unknown dataformats={dataformats!r}: use one of {', '.join(_LAYOUTS)}"
            )
        if len(fmt) != len(shape):
            raise ValueError(
                f"image of shape {shape} has {len(shape)} dims but dataformats={dataformats!r} "
                f"has {len(fmt)}"
            )
        return fmt
    if len(shape) == 2:
        return "HW"
    if len(shape) not in (3, 4):
        raise ValueError(f"cannot show an image of shape {shape}: expected HW, CHW, HWC or NCHW")
    first, last = shape[-3] in _CHANNEL_COUNTS, shape[-1] in _CHANNEL_COUNTS
    if first == last:
        why = "ambiguous" if first else "no end has 1, 3 or 4 channels"
        raise ValueError(f"image of shape {shape} has an unclear layout ({why}): {_HINT}")
    inner = "CHW" if first else "HWC"
    return inner if len(shape) == 3 else "N" + inner


def _pixels(image: Any, dataformats: str | None, meta: dict[str, Any]) -> npt.NDArray[np.uint8]:
    """An (H, W, C) uint8 array from `image` in any accepted layout and dtype.

    Shape and size are checked before any pixel is copied or converted.
    """
    raw_shape = image.shape if hasattr(image, "shape") else np.shape(image)
    shape = tuple(int(d) for d in raw_shape)
    fmt = _layout(shape, dataformats)
    dims = dict(zip(fmt, shape, strict=True))
    n, height, width, channels = dims.get("N", 1), dims["H"], dims["W"], dims.get("C", 1)
    if channels not in _MODES:
        raise ValueError(
            f"image of shape {shape} read as {fmt} has {channels} channels: expected 1, 2, "
            "3 or 4; " + _HINT
        )
    if n < 1:
        raise ValueError(f"image batch of shape {shape} is empty")
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    _check_size(height * rows, width * cols)
    arr = _to_numpy(image)
    if fmt == "HW":
        arr = arr[None, :, :, None]
    elif fmt in ("CHW", "HWC"):
        arr = arr[None]
    if fmt.endswith("CHW"):
        arr = arr.transpose(0, 2, 3, 1)
    pixels = _to_uint8(arr, meta)
    if n == 1:
        return np.asarray(pixels[0], dtype=np.uint8)
    grid = np.zeros((rows * height, cols * width, channels), dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        grid[r * height : (r + 1) * height, c * width : (c + 1) * width] = pixels[i]
    meta["grid"] = {"n": n, "rows": rows, "cols": cols, "tile_height": height, "tile_width": width}
    return grid


def _to_uint8(arr: npt.NDArray[Any], meta: dict[str, Any]) -> npt.NDArray[np.uint8]:
    kind = arr.dtype.kind
    if kind == "c":
        _raise_complex(str(arr.dtype))
    if kind == "b":
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        meta["source_dtype"] = "uint16"
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if kind in "iu":
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(
                f"integer image ({arr.dtype}) has values in [{lo}, {hi}]: expected [0, 255]; "
                "convert it to uint8 or to floats in [0, 1]"
            )
        return arr.astype(np.uint8)
    if kind != "f":
        raise ValueError(
            f"cannot show an image of dtype {arr.dtype}: use uint8 or floats in [0, 1]"
        )
    return _float_to_uint8(arr.astype(np.float32, copy=False), meta)


def _float_to_uint8(arr: npt.NDArray[np.float32], meta: dict[str, Any]) -> npt.NDArray[np.uint8]:
    nan = np.isnan(arr)
    inf = np.isinf(arr)
    n_nan, n_inf = int(nan.sum()), int(inf.sum())
    if n_nan or n_inf:
        arr = np.where(nan | inf, np.float32(0), arr)
        if n_nan:
            meta["nan_pixels"] = n_nan
        if n_inf:
            meta["inf_pixels"] = n_inf
    lo, hi = float(arr.min()), float(arr.max())
    if hi > 1 + _FLOAT_TOLERANCE:
        hint = "divide it by 255" if hi <= 255 + _FLOAT_TOLERANCE else "rescale it"
        raise ValueError(
            f"float image has values up to {hi:g}: expected [0, 1]; {hint} (or pass a uint8 array)"
        )
    if lo < -_FLOAT_TOLERANCE:
        raise ValueError(
            f"float image has negative values (min {lo:g}): expected [0, 1]; undo the "
            "normalisation, e.g. (x - x.min()) / (x.max() - x.min())"
        )
    scaled = np.rint(np.clip(arr, 0.0, 1.0) * np.float32(255))
    return np.asarray(scaled, dtype=np.uint8)
