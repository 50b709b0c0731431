"""encode_image: every shape and dtype in THREATS N5 either encodes faithfully or fails clearly."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from deepscope.tracking.image import encode_image, max_pixels


def _decode(png: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    return np.asarray(img)


def test_uint8_hwc_round_trips_exactly() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    png, meta = encode_image(x)
    assert meta == {"width": 5, "height": 7, "channels": 3}
    np.testing.assert_array_equal(_decode(png), x)


def test_float_chw_tensor_in_unit_range_is_scaled_by_255() -> None:
    x = torch.tensor([[[0.0, 0.5], [1.0, 0.25]]] * 3)
    png, meta = encode_image(x)
    assert meta["channels"] == 3 and (meta["width"], meta["height"]) == (2, 2)
    np.testing.assert_array_equal(_decode(png)[:, :, 0], [[0, 128], [255, 64]])


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ((1, 1, 32, 24), (24, 32, 1)),
        ((32, 24), (24, 32, 1)),
        ((1, 32, 24), (24, 32, 1)),
        ((32, 24, 1), (24, 32, 1)),
        ((4, 6, 7), (7, 6, 4)),
        ((6, 7, 3), (7, 6, 3)),
        ((1, 6, 7, 3), (7, 6, 3)),
    ],
)
def test_accepted_shapes(shape: tuple[int, ...], expected: tuple[int, int, int]) -> None:
    png, meta = encode_image(torch.rand(shape))
    assert (meta["width"], meta["height"], meta["channels"]) == expected
    assert "grid" not in meta
    assert _decode(png).shape[:2] == (expected[1], expected[0])


def test_chw_and_hwc_give_the_same_picture() -> None:
    chw = torch.rand(3, 10, 12)
    png_a, meta_a = encode_image(chw)
    png_b, meta_b = encode_image(chw.permute(1, 2, 0).contiguous())
    assert meta_a == meta_b == {"width": 12, "height": 10, "channels": 3}
    np.testing.assert_array_equal(_decode(png_a), _decode(png_b))


@pytest.mark.parametrize("shape", [(3, 3, 3), (4, 8, 3), (8, 8, 7), (2, 2, 2, 2, 2), (5,)])
def test_unclear_layout_raises_naming_layouts_and_dataformats(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="dataformats|HW, CHW") as err:
        encode_image(torch.rand(shape))
    assert "CHW" in str(err.value)


def test_dataformats_resolves_an_ambiguous_shape() -> None:
    x = torch.rand(3, 3, 3)
    x[0] = 0.0  # first channel black when read as CHW
    png, _ = encode_image(x, dataformats="CHW")
    assert (_decode(png)[:, :, 0] == 0).all()
    png, _ = encode_image(x, dataformats="HWC")
    assert (_decode(png)[0] == 0).all()


def test_dataformats_that_do_not_match_the_shape_raise() -> None:
    with pytest.raises(ValueError, match="dims"):
        encode_image(torch.rand(3, 4, 4), dataformats="HW")
    with pytest.raises(ValueError, match="unknown dataformats"):
        encode_image(torch.rand(3, 4, 4), dataformats="WHC")
    with pytest.raises(ValueError, match="channels"):
        encode_image(torch.rand(5, 4, 4), dataformats="CHW")


def test_floats_in_0_255_raise_suggesting_division() -> None:
    with pytest.raises(ValueError, match="divide it by 255"):
        encode_image(torch.rand(3, 8, 8) * 255)


def test_negative_values_raise() -> None:
    with pytest.raises(ValueError, match="negative"):
        encode_image(torch.rand(3, 8, 8) - 0.5)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        encode_image(np.array([[-1, 3]], dtype=np.int32))


def test_nan_pixels_become_zero_and_are_counted() -> None:
    x = torch.full((4, 4), 1.0)
    x[0, :3] = math.nan
    x[1, 0] = math.inf
    png, meta = encode_image(x)
    assert meta["nan_pixels"] == 3 and meta["inf_pixels"] == 1
    pixels = _decode(png)
    assert (pixels[0, :3] == 0).all() and pixels[1, 0] == 0 and pixels[3, 3] == 255


def test_uint16_is_scaled_to_8_bits_and_noted() -> None:
    x = np.array([[0, 257, 65535]], dtype=np.uint16)
    png, meta = encode_image(x)
    assert meta["source_dtype"] == "uint16"
    np.testing.assert_array_equal(_decode(png), [[0, 1, 255]])


def test_bool_becomes_black_and_white() -> None:
    png, _ = encode_image(torch.tensor([[True, False]]))
    np.testing.assert_array_equal(_decode(png), [[255, 0]])


def test_complex_raises() -> None:
    with pytest.raises(ValueError, match="complex"):
        encode_image(torch.ones(3, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="complex"):
        encode_image(np.ones((4, 4), dtype=np.complex128))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_is_converted(dtype: torch.dtype) -> None:
    x = torch.tensor([[0.0, 1.0], [0.5, 0.25]]).to(dtype)
    png, _ = encode_image(x)
    np.testing.assert_array_equal(_decode(png), [[0, 255], [128, 64]])


def test_batch_is_tiled_into_a_grid_described_in_meta() -> None:
    batch = torch.stack([torch.full((1, 4, 5), i / 4) for i in range(5)])
    png, meta = encode_image(batch)
    grid = meta["grid"]
    assert grid == {"n": 5, "rows": 2, "cols": 3, "tile_height": 4, "tile_width": 5}
    assert (meta["width"], meta["height"]) == (15, 8)
    pixels = _decode(png)
    assert pixels[0, 0] == 0 and pixels[0, 5] == 64 and pixels[4, 5] == 255
    assert (pixels[4:, 10:] == 0).all()  # the empty sixth tile


def test_pil_images_pass_through_and_odd_modes_convert() -> None:
    rgb = Image.new("RGB", (6, 4), (10, 20, 30))
    png, meta = encode_image(rgb)
    assert meta == {"width": 6, "height": 4, "channels": 3}
    assert tuple(_decode(png)[0, 0]) == (10, 20, 30)
    _, meta = encode_image(Image.new("P", (3, 3)))
    assert meta["channels"] == 3
    _, meta = encode_image(Image.new("1", (3, 3)))
    assert meta["channels"] == 1


class _Huge:
    """Claims an enormous shape; converting it would be a bug (N5: checked before copying)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise AssertionError("pixels were read before the size check")


@pytest.mark.parametrize("shape", [(50_000, 50_000), (3, 50_001, 50_001), (max_pixels() + 1, 1)])
def test_oversized_images_are_rejected_before_conversion(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="MAX_IMAGE_PIXELS"):
        encode_image(_Huge(shape))


def test_oversized_pil_image_is_rejected() -> None:
    img = Image.new("L", (1, 1))
    img._size = (max_pixels() + 1, 1)  # noqa: SLF001 (fake size, no allocation)
    with pytest.raises(ValueError, match="MAX_IMAGE_PIXELS"):
        encode_image(img)


def test_errors_raise_in_the_callers_thread_synchronously() -> None:
    import threading

    seen: list[str] = []
    try:
        encode_image(torch.rand(3, 3, 3))
    except ValueError:
        seen.append(threading.current_thread().name)
    assert seen == [threading.current_thread().name]
