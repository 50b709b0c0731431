"""The typed-array envelope: exact layout, no-copy decode, refusal of malformed bytes,
and the size a heatmap costs on the wire."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from deepscope.views import envelope
from deepscope.views.envelope import EnvelopeError, decode, encode, read_header


@pytest.mark.parametrize("dtype", ["float16", "float32", "uint8", "int32"])
@pytest.mark.parametrize("shape", [(), (7,), (3, 5), (2, 3, 4)])
def test_round_trip_keeps_dtype_shape_and_values(dtype: str, shape: tuple[int, ...]) -> None:
    arr = (np.arange(int(np.prod(shape))) * 3 - 5).reshape(shape).astype(dtype)
    blob = encode(arr)
    back = decode(blob)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, arr)
    header = read_header(blob)
    assert header.offset % 8 == 0 and header.offset == len(blob) - arr.nbytes


def test_layout_is_the_documented_little_endian_header() -> None:
    blob = encode(np.array([[1.0, 2.0, 3.0]], dtype=">f4"))  # big-endian input
    assert blob[:4] == b"DSAR" and blob[4:8] == bytes([1, 2, 2, 0])
    assert struct.unpack("<2I", blob[8:16]) == (1, 3)
    assert blob[16:] == struct.pack("<3f", 1.0, 2.0, 3.0)
    odd = encode(np.zeros((2, 2, 2), dtype=np.uint8))  # 8 + 12 = 20 -> padded to 24
    assert odd[20:24] == b"\0\0\0\0" and len(odd) == 24 + 8


def test_decode_is_a_view_not_a_copy() -> None:
    blob = bytearray(encode(np.arange(12, dtype=np.float32).reshape(3, 4)))
    arr = decode(blob)
    blob[-4:] = struct.pack("<f", 99.0)
    assert arr[2, 3] == 99.0


def test_float64_travels_as_float32_and_other_dtypes_are_refused() -> None:
    assert decode(encode(np.ones(3))).dtype == np.float32
    for bad in (np.ones(3, dtype=np.int64), np.ones(3, dtype=bool), np.ones(3, dtype=complex)):
        with pytest.raises(EnvelopeError, match="cast"):
            encode(bad)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b"XSAR" + b[4:],  # magic
        lambda b: b[:4] + bytes([2]) + b[5:],  # version
        lambda b: b[:5] + bytes([9]) + b[6:],  # dtype code
        lambda b: b[:6] + bytes([9]) + b[7:],  # ndim over the cap
        lambda b: b[:-1],  # cut data
        lambda b: b + b"\0",  # trailing bytes
        lambda b: b[:8] + struct.pack("<2I", 4096, 4096) + b[16:],  # shape lies
        lambda b: b[:8] + struct.pack("<2I", 2**31, 2**31) + b[16:],  # announces > cap
        lambda b: b[:6],  # header cut
    ],
)
def test_malformed_envelopes_are_refused(mutate: object) -> None:
    good = encode(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(EnvelopeError):
        decode(mutate(good))  # type: ignore[operator]


def test_a_1024_square_float32_heatmap_is_its_bytes_not_json() -> None:
    heat = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    blob = encode(heat)
    # 4,194,320 B: the raw floats (4 MiB, 4.19 decimal MB) plus a 16-byte header
    assert len(blob) == 1024 * 1024 * 4 + 16 <= 4.1 * 2**20
    rows_as_json = len(json.dumps(heat[:64].tolist()))  # 1/16 of the map as JSON text
    assert rows_as_json * 16 > 4 * len(blob)  # the whole map as JSON: ~20 MB


def test_arrays_over_the_cap_are_refused() -> None:
    big = np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.uint8),
                                          (envelope.MAX_ARRAY_BYTES + 1,), (0,))  # fmt: skip
    with pytest.raises(EnvelopeError, match="cap"):
        encode(big)
