"""The lazy tensor store (issue 15 "any size"): opening reads the structure only, a
tensor's bytes are read when asked, and only that tensor's; statistics read each byte once
through small buffers (no pages left mapped); values equal numpy's for every dtype."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from weights_reference import numpy_stats

import deepscope
from deepscope.analysis.weights.lazy import open_tensors

MB = 1 << 20


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes | int]]
) -> Path:
    """`name -> (dtype code, shape, bytes or a byte count left as a hole)`; a hole is made
    with truncate, so it reads as zeros and uses no disk space."""
    header: dict[str, Any] = {}
    pos = 0
    for name, (code, shape, data) in tensors.items():
        n = data if isinstance(data, int) else len(data)
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [pos, pos + n]}
        pos += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        start = f.tell()
        for name, (_, _, data) in tensors.items():
            if isinstance(data, bytes):
                f.seek(start + header[name]["data_offsets"][0])
                f.write(data)
        f.truncate(start + pos)
    return path


def mapped_kb(path: Path) -> int:
    """Resident kB of every mapping of `path` in this process (/proc/self/smaps)."""
    total, inside = 0, False
    target = str(path.resolve())
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:
                inside = len(head) >= 6 and " ".join(head[5:]) == target
            elif inside and head and head[0] == "Rss:":
                total += int(head[1])
    return total


def rchar() -> int:
    """Bytes this process read with read-like syscalls (pread included) so far."""
    with open("/proc/self/io") as f:
        return int(f.read().split("rchar:")[1].split()[0])


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def _check(got: dict[str, Any], want: dict[str, Any], what: str) -> None:
    for k, v in want.items():
        if v is None:
            assert got[k] is None, (what, k)
        else:
            assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), (what, k, got[k], v)


def _values() -> dict[str, tuple[str, np.ndarray, bytes]]:
    """name -> (safetensors code, the exact numbers, the stored bytes)."""
    rng = np.random.default_rng(0)
    big = (rng.standard_normal(600_000) * 3).astype(np.float16)  # > 4 chunks: threads
    big[[5, 70_000]] = np.nan
    big[[9, 400_000]] = [np.inf, -np.inf]
    big[1000:1100] = 0
    bf = rng.standard_normal((300, 301)).astype(np.float32)
    bf[0, 0], bf[1, 1], bf[2, :5] = np.nan, -np.inf, 0
    bf_bits = _bf16_bits(bf)
    bf_exact = (bf_bits.astype(np.uint32) << 16).view(np.float32)
    i8 = rng.integers(-128, 128, (7, 1000), dtype=np.int8)
    f32 = (rng.standard_normal((513, 129)) + 5).astype(np.float32)
    return {
        "big.weight": ("F16", big, big.tobytes()),
        "bf.weight": ("BF16", bf_exact, bf_bits.tobytes()),
        "q.weight": ("I8", i8, i8.tobytes()),
        "f.weight": ("F32", f32, f32.tobytes()),
        "empty.weight": ("F32", np.zeros((0, 5), np.float32), b""),
        "scalar": ("F64", np.array(2.5), np.array(2.5).tobytes()),
        "allnan": ("F16", np.full(4, np.nan, np.float16), np.full(4, np.nan, np.float16).tobytes()),
    }


def test_safetensors_store_reads_views_and_stats_equal_numpy(tmp_path: Path) -> None:
    vals = _values()
    path = write_safetensors(
        tmp_path / "m.safetensors", {n: (c, v.shape, b) for n, (c, v, b) in vals.items()}
    )
    with open_tensors(path) as store:
        assert store.names() == list(vals) and store.format == "safetensors"
        info = store.info("q.weight")
        assert (info.shape, info.dtype, info.nbytes) == ((7, 1000), "int8", 7000)
        with open(path, "rb") as f:  # the offset is where the bytes are in the file
            f.seek(info.offset or 0)
            assert f.read(info.nbytes) == vals["q.weight"][2]
        big = store.read("big.weight")
        assert not big.flags.writeable and not big.flags.owndata  # a view on the map
        assert store.info("bf.weight").dtype == "bfloat16"
        for name, (_, exact, _) in vals.items():
            got = store.read(name)
            assert got.shape == exact.shape
            np.testing.assert_array_equal(got, exact)
    w = deepscope.weights(path)
    stats = w.stats()
    for name, (_, exact, _) in vals.items():
        _check(stats[name], numpy_stats(exact), name)
    every = np.concatenate([v.astype(np.float64).ravel() for _, v, _ in vals.values()])
    _check(w.total(), numpy_stats(every), "total")


def test_opening_and_one_heatmap_read_only_that_tensor(tmp_path: Path) -> None:
    small = np.arange(256 * 256, dtype=np.float16).reshape(256, 256) / 1000
    path = write_safetensors(
        tmp_path / "m.safetensors",
        {
            "a.weight": ("F16", (4096, 8192), 64 * MB),  # a hole: never written
            "small.weight": ("F16", small.shape, small.tobytes()),
            "z.weight": ("F16", (4096, 8192), 64 * MB),
        },
    )
    assert os.stat(path).st_blocks * 512 < 4 * MB  # sparse: no disk space used
    deepscope.weights(write_safetensors(tmp_path / "warm.safetensors", {})).stats()  # imports
    before = rchar()
    w = deepscope.weights(path)
    assert set(w.tensors) == {"a.weight", "small.weight", "z.weight"}
    assert rchar() - before < 1 * MB  # the header only
    g = w.heatmap("small.weight")
    assert g.ranges == [(-65.5, 65.5)]  # the small tensor's own extreme (65535 / 1000)
    assert rchar() - before < 1 * MB  # values come from the memory map...
    assert mapped_kb(path) < 1024  # ...and only the small tensor's pages were touched
    # the measure sees a read elsewhere: the whole of a.weight maps 64 MB of zero pages
    assert float(np.abs(w.values("a.weight")).max()) == 0.0
    assert mapped_kb(path) > 48 * 1024


def test_statistics_read_each_byte_once_and_keep_nothing_mapped(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2048, 4096)).astype(np.float16)  # 16 MB
    path = write_safetensors(tmp_path / "m.safetensors", {"x": ("F16", x.shape, x.tobytes())})
    w = deepscope.weights(path)
    before = rchar()
    row = w.stats()["x"]
    read = rchar() - before
    assert read < x.nbytes + 1 * MB  # no byte read twice (blocks are mapped one at a time)
    assert mapped_kb(path) < 256  # no page of the tensor left in this process's maps
    _check(row, numpy_stats(x), "x")


def test_10gb_sparse_safetensors_structure_opens_without_reading_data(tmp_path: Path) -> None:
    layers = {}
    for i in range(40):  # 40 x 256 MB = 10 GB of fp16, all a hole
        layers[f"layers.{i}.mlp.weight"] = ("F16", (16384, 8192), 256 * MB)
        layers[f"layers.{i}.norm.weight"] = ("F16", (8192,), 16384)
    path = write_safetensors(tmp_path / "big.safetensors", layers)
    if os.stat(path).st_blocks * 512 > 16 * MB:
        pytest.skip("this filesystem does not keep sparse files")
    assert os.stat(path).st_size > 10 * 10**9
    before = rchar()
    model = deepscope.load_model(path)
    store = open_tensors(path)
    assert len(model.weights) == len(store) == 80
    assert store.info("layers.39.mlp.weight").nbytes == 256 * MB
    assert rchar() - before < 8 * MB
    assert mapped_kb(path) < 8 * 1024  # the small norms copied; no big tensor touched
    store.close()


# --- ONNX ----------------------------------------------------------------------------


def _onnx(path: Path, inits: list[TensorProto], external: bool = False) -> Path:
    nodes = []
    for i, t in enumerate(inits):
        nodes.append(helper.make_node("Identity", [t.name], [f"o{i}"], name=f"n{i}"))
    graph = helper.make_graph(
        [*nodes, helper.make_node("Identity", ["x"], ["y"], name="id")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
        + [helper.make_tensor_value_info(f"o{i}", t.data_type, None) for i, t in enumerate(inits)],
        inits,
    )
    model = helper.make_model(graph)
    if external:
        onnx.save_model(
            model, str(path), save_as_external_data=True, location="w.bin", size_threshold=0
        )
    else:
        onnx.save_model(model, str(path))
    return path


@pytest.mark.parametrize("external", [False, True], ids=["inline", "external"])
def test_onnx_store_reads_each_initializer_in_place(tmp_path: Path, external: bool) -> None:
    rng = np.random.default_rng(2)
    big = rng.standard_normal((4096, 2048)).astype(np.float32)  # 32 MB
    small = rng.standard_normal((3, 4)).astype(np.float16)
    bf = rng.standard_normal((5, 6)).astype(np.float32)
    bf_t = helper.make_tensor("bf", TensorProto.BFLOAT16, bf.shape, _bf16_bits(bf).tobytes(), True)
    typed = helper.make_tensor("typed", TensorProto.FLOAT, [3], [1.0, -2.0, 3.5])  # float_data
    i4 = helper.make_tensor("i4", TensorProto.INT4, [3], [1, -2, 7])
    inits = [numpy_helper.from_array(big, "big"), numpy_helper.from_array(small, "small")]
    path = _onnx(tmp_path / "m.onnx", [*inits, bf_t, typed, i4], external)
    before = rchar()
    store = open_tensors(path)
    assert rchar() - before < (64 * 1024 if external else 1 * MB)  # no raw_data copied
    assert store.names() == ["big", "small", "bf", "typed", "i4"]
    info = store.info("big")
    assert info.shape == (4096, 2048) and info.dtype == "float32" and info.nbytes == big.nbytes
    assert Path(info.file or "").name == ("w.bin" if external else "m.onnx")
    got = store.read("small")
    np.testing.assert_array_equal(got, small)
    assert not got.flags.owndata
    assert mapped_kb(Path(info.file or "")) < 4096  # big's 32 MB untouched (read-around aside)
    np.testing.assert_array_equal(store.read("big"), big)
    np.testing.assert_array_equal(
        store.read("bf"), (_bf16_bits(bf).astype(np.uint32) << 16).view(np.float32)
    )
    np.testing.assert_array_equal(store.read("typed"), [1.0, -2.0, 3.5])
    np.testing.assert_array_equal(np.asarray(store.read("i4"), dtype=np.int8), [1, -2, 7])
    before = rchar()
    w = deepscope.weights(path)
    assert rchar() - before < 1 * MB  # the protobuf is walked, not parsed with its raw_data
    stats = w.stats()
    _check(stats["big"], numpy_stats(big), "big")
    assert stats["bf"]["dtype"] == "bfloat16"


def test_10gb_sparse_onnx_external_data_structure_opens(tmp_path: Path) -> None:
    inits = []
    n = 20
    for i in range(n):  # 20 x 512 MB of fp16 external data, all a hole
        t = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT16, dims=[16384, 16384])
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "w.bin"), ("offset", i * 512 * MB), ("length", 512 * MB)):
            t.external_data.add(key=k, value=str(v))
        inits.append(t)
    path = _onnx(tmp_path / "m.onnx", inits)
    with open(tmp_path / "w.bin", "wb") as f:
        f.truncate(n * 512 * MB)
    if os.stat(tmp_path / "w.bin").st_blocks * 512 > 16 * MB:
        pytest.skip("this filesystem does not keep sparse files")
    before = rchar()
    model = deepscope.load_model(path)
    store = open_tensors(path)
    assert len(model.weights) == len(store) == n
    assert store.info("w19").offset == 19 * 512 * MB
    assert rchar() - before < 8 * MB
    assert mapped_kb(tmp_path / "w.bin") < 1024
    store.close()


# --- state dicts ---------------------------------------------------------------------


def test_state_dict_store_through_the_safe_path(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(3)
    tensors = {
        "fc.weight": torch.randn(300, 300, generator=g),
        "fc.bias": torch.randn(300, generator=g).to(torch.bfloat16),
        "emb.weight": torch.randn(50, 8, generator=g).half(),
    }
    tensors["fc.weight"][0, 0] = float("nan")
    torch.save({"state_dict": tensors, "epoch": 3}, tmp_path / "ckpt.pt")
    store = open_tensors(tmp_path / "ckpt.pt")
    assert store.names() == list(tensors) and store.format == "state_dict"
    assert "weights from the 'state_dict' entry" in store.notes
    assert store.info("fc.bias").dtype == "bfloat16"
    for name, t in tensors.items():
        np.testing.assert_array_equal(store.read(name), t.float().numpy())
    stats = deepscope.weights(tmp_path / "ckpt.pt").stats()
    for name, t in tensors.items():
        _check(stats[name], numpy_stats(t.double().numpy()), name)


# --- pooling on bit patterns and cancellation-safe statistics -----------------------


def _reference_pool(m: np.ndarray, fy: int, fx: int) -> np.ndarray:
    r, c = m.shape
    out = np.empty((-(-r // fy), -(-c // fx)))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = m[i * fy : (i + 1) * fy, j * fx : (j + 1) * fx].astype(np.float64).ravel()
            block = block[~np.isnan(block)]
            if block.size == 0:
                out[i, j] = np.nan
            else:  # the largest |w|, the negative one of a +/- pair
                out[i, j] = block[np.abs(block) == np.abs(block).max()].min()
    return out


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_bit_pattern_pooling_equals_a_brute_force_reference(dtype: Any) -> None:
    from deepscope.analysis.weights.heatmap import maxabs_pool

    rng = np.random.default_rng(4)
    for r, c, fy, fx in [(37, 23, 4, 3), (40, 40, 5, 4), (7, 100, 2, 7), (1, 50, 1, 7)]:
        m = (rng.standard_normal((r, c)) * 3).astype(dtype)
        m[0, 0], m[0, 1] = 50.0, -50.0  # a tie of the largest magnitudes: the negative kept
        m[min(2, r - 1), 3], m[-1, -1] = np.inf, -np.inf
        m[0, 5:8] = -0.0
        np.testing.assert_array_equal(maxabs_pool(m, fy, fx), _reference_pool(m, fy, fx))
        m[0, 9] = np.nan  # a NaN band: the float path, same answer
        np.testing.assert_array_equal(maxabs_pool(m, fy, fx), _reference_pool(m, fy, fx))


def test_bf16_heatmap_pools_the_stored_bits_like_the_float_path(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 70)).astype(np.float32)
    x[1234, 7] = -40.0
    bits = _bf16_bits(x)
    exact = (bits.astype(np.uint32) << 16).view(np.float32)
    path = write_safetensors(tmp_path / "m.safetensors", {"w": ("BF16", x.shape, bits.tobytes())})
    g_file = deepscope.weights(path).heatmap("w", max_size=300)
    g_mem = deepscope.weights({"w": exact}).heatmap("w", max_size=300)
    assert g_file.ranges == g_mem.ranges == [(-40.0, 40.0)]
    np.testing.assert_array_equal(g_file.pixels, g_mem.pixels)


def test_stats_keep_precision_when_the_mean_dwarfs_the_spread() -> None:
    from deepscope.analysis.weights.stats import tensor_stats

    rng = np.random.default_rng(6)
    x = 1000.0 + rng.standard_normal(200_000) * 1e-4  # a LayerNorm-like weight near 1000
    _check(tensor_stats(x), numpy_stats(x), "near-constant")
