"""Weights analysis speed and memory (issue 15), one run, one JSON line printed last.

Figures (each timed figure is the median of ``--reps`` runs, interleaved with its peer):
- ``stats_*``: `deepscope.weights(file).stats()` over every tensor of a synthetic fp16
  safetensors model of ``--params`` parameters (default 1e9, ~2 GB on disk), each run in a
  fresh child process (peak RSS from its VmHWM; the time excludes what the child does once
  per process, the modules' imports (numpy's among them) and the kernel's loading, done by
  the same call on a one-tensor file first and reported apart as ``stats_imports_s``).
  Peer: ``read_*``, one sequential read of the same file by this process: ``readinto``
  of one reused buffer of the statistics' block size (`_stream.BLOCK_BYTES`, 4 MB), i.e.
  every byte copied out of the page cache once (the statistics themselves map the
  blocks instead, so they copy nothing). ``*_cold``: the file's pages dropped from the
  page cache first (posix_fadvise DONTNEED, which works without root: ``cold_supported``
  says whether it ran; the disk then serves it), ``*_warm``: the file in the page cache.
  Runs are interleaved (read, stats, read, stats, ...), figures are medians. Goal: stats ≤
  read (like with like: cold vs cold, warm vs warm), RSS ≤ 300 MB. ``--only stats`` runs
  just these (the 1B-parameter figures) and prints their JSON line. float16 goes through
  the C kernel where it is built (``kernel``: its path on this CPU, "avx512" / "avx2", or
  "numpy"; `analysis/weights/_fast`); ``stats_numpy_path_warm_s`` is the same statistics
  without it (``DEEPSCOPE_NO_NATIVE=1``, the bit-pattern histogram), interleaved with the
  warm runs.
- ``heatmap_s``: the heatmap of a 50,000 × 4,096 fp16 matrix (goal ≤ 1 s); its yardstick
  ``heatmap_one_pass_s``, one integer max over the same 410 MB (what a loaded machine
  allows now).
- ``open10g_*``: the structure of a 10 GB safetensors model and of a 10 GB ONNX model with
  external data (sparse files: the data regions are holes, no disk space used), opened by
  `deepscope.load_model` and by `open_tensors` in a fresh child: seconds and VmHWM
  (goal ≤ 3 s, ≤ 300 MB).
- ``esd_s``: spectra (singular values + alpha) of every 2-D-or-conv weight of a
  ResNet-18-shaped set of random weights.
- ``weightwatcher``: only when the `weightwatcher` package imports (it is not a
  dependency and this benchmark installs nothing; a throwaway venv that sees this one's
  packages works: ``python -m venv /tmp/wwenv``, a .pth calling ``site.addsitedir`` on
  .venv's site-packages, ``pip install --no-deps weightwatcher`` + ``pip install pandas``).
  The same ResNet-18-shaped weights as torch Conv2d/Linear modules, plus heavy-tailed
  (Student-t) Linear weights: ``ww.WeightWatcher(model).analyze()`` time against
  ``esd_s`` (interleaved, medians), and per layer its alpha against ours (Pearson
  correlation, max |Δ|, how many within ±0.05).

Run: ``python benchmarks/weights_bench.py [--params 1e9] [--reps 3] [--dir /tmp/x]
[--only esd|stats]``. The machine may be shared: ``load_avg_*`` says how busy it was;
compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESNET18 = [(64, 3, 7, 7)] + [(64, 64, 3, 3)] * 4 + [(128, 64, 3, 3), (128, 128, 3, 3)] * 2
RESNET18 += [(256, 128, 3, 3), (256, 256, 3, 3)] * 2 + [(512, 256, 3, 3), (512, 512, 3, 3)] * 2
RESNET18 += [(128, 64, 1, 1), (256, 128, 1, 1), (512, 256, 1, 1), (1000, 512)]
MB = 1 << 20
GOALS = {"stats_vs_read": 1.0, "rss_mb": 300, "heatmap_s": 1.0, "open10g_s": 3.0}


def _write_safetensors(path: Path, tensors: list[tuple[str, tuple[int, ...], bytes | int]]) -> None:
    """fp16 tensors: bytes written, or an int byte count left as a hole (sparse)."""
    header: dict[str, dict[str, Any]] = {}
    pos = 0
    for name, shape, data in tensors:
        n = data if isinstance(data, int) else len(data)
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [pos, pos + n]}
        pos += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        start = f.tell()
        for name, _, data in tensors:
            if isinstance(data, bytes):
                f.seek(start + header[name]["data_offsets"][0])
                f.write(data)
        f.truncate(start + pos)
        f.flush()
        os.fsync(f.fileno())


def _make_model(path: Path, params: float) -> None:
    rng = np.random.default_rng(0)
    block = rng.standard_normal((4096, 4096), dtype=np.float32).astype(np.float16)
    block[0, :4] = [np.nan, np.inf, 0, -np.inf]  # the slow path runs on every tensor
    n = max(1, round(params / block.size))
    data = block.tobytes()
    _write_safetensors(path, [(f"layers.{i}.weight", block.shape, data) for i in range(n)])


def _make_sparse_10g(d: Path) -> tuple[Path, Path]:
    layers: list[tuple[str, tuple[int, ...], bytes | int]] = []
    for i in range(40):  # 40 layers x (256 MB + a norm) of fp16: 10.7 GB
        layers.append((f"layers.{i}.mlp.weight", (16384, 8192), 256 * MB))
        layers.append((f"layers.{i}.norm.weight", (8192,), 16384))
    st = d / "big.safetensors"
    _write_safetensors(st, layers)
    from onnx import TensorProto, helper

    inits, nodes, prev = [], [], "x"
    for i in range(20):  # 20 x 512 MB of external fp16 data
        t = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT16, dims=[16384, 16384])
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", "w.bin"), ("offset", i * 512 * MB), ("length", 512 * MB)):
            t.external_data.add(key=k, value=str(v))
        inits.append(t)
        nodes.append(helper.make_node("MatMul", [prev, t.name], [f"h{i}"], name=f"mm{i}"))
        prev = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 16384])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT16, [1, 16384])],
        inits,
    )
    on = d / "onnx" / "big.onnx"
    on.parent.mkdir()
    on.write_bytes(helper.make_model(graph).SerializeToString())
    with open(on.parent / "w.bin", "wb") as f:
        f.truncate(20 * 512 * MB)
    return st, on


def _hwm_mb() -> float:
    # VmHWM, not ru_maxrss: ru_maxrss keeps the parent's peak across fork+exec
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) / 1024


def _child(kind: str, path: str) -> None:
    import deepscope

    t = time.perf_counter()
    if kind == "stats":
        # once per process, timed apart: the modules it loads (numpy among them), the
        # kernel's library, by the same call on a one-tensor file
        tiny = Path(path).with_name("tiny.safetensors")
        _write_safetensors(tiny, [("w", (64,), np.ones(64, np.float16).tobytes())])
        from deepscope.analysis.weights import _fast

        deepscope.weights(tiny).stats()
        imports = time.perf_counter() - t
        t = time.perf_counter()
        deepscope.weights(path).stats()
        s = time.perf_counter() - t
        figures = {"s": s, "rss_mb": _hwm_mb(), "kernel": _fast.path(), "imports_s": imports}
        print(json.dumps(figures))
        return
    elif kind == "load_model":
        deepscope.load_model(path)
    else:
        from deepscope.analysis.weights.lazy import open_tensors

        store = open_tensors(path)
        store.info(store.names()[-1])
    print(json.dumps({"s": time.perf_counter() - t, "rss_mb": _hwm_mb()}))


def _run_child(kind: str, path: Path, numpy_only: bool = False) -> dict[str, float]:
    env = dict(os.environ)
    if numpy_only:
        env["DEEPSCOPE_NO_NATIVE"] = "1"
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _drop_cache(path: Path) -> bool:
    if not hasattr(os, "posix_fadvise"):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return True


def _read(path: Path) -> float:
    from deepscope.analysis.weights._stream import BLOCK_BYTES

    t = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(BLOCK_BYTES)
        while f.readinto(buf):
            pass
    return time.perf_counter() - t


def _stats_figures(path: Path, reps: int) -> dict[str, object]:
    out: dict[str, object] = {}
    peak: list[float] = []
    imports: list[float] = []
    out["kernel"] = _run_child("stats", path).get("kernel", "numpy")  # untimed: a warm-up
    numpy_path = []
    for mode in ("cold", "warm"):
        reads, stats = [], []
        for _ in range(reps):  # interleaved: read, stats, read, stats, ...
            if mode == "cold":
                out["cold_supported"] = _drop_cache(path)
            else:
                _read(path)
            reads.append(_read(path))
            if mode == "cold":
                _drop_cache(path)
            child = _run_child("stats", path)
            stats.append(child["s"])
            peak.append(child["rss_mb"])
            imports.append(child["imports_s"])
            if mode == "warm":  # the same statistics without the kernel (the histogram path)
                _read(path)
                numpy_path.append(_run_child("stats", path, numpy_only=True)["s"])
        out[f"read_{mode}_s"] = statistics.median(reads)
        out[f"stats_{mode}_s"] = statistics.median(stats)
        out[f"stats_{mode}_vs_read"] = statistics.median(stats) / statistics.median(reads)
        out[f"stats_{mode}_runs_s"] = [round(x, 3) for x in stats]
    out["stats_numpy_path_warm_s"] = statistics.median(numpy_path)
    out["kernel_speedup_warm"] = statistics.median(numpy_path) / float(out["stats_warm_s"])  # type: ignore[arg-type]
    out["stats_peak_rss_mb"] = max(peak)
    out["stats_imports_s"] = statistics.median(imports)  # once per process, not in stats_*
    out["read_means"] = "readinto one reused 4 MB buffer: each byte copied out of the page cache"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=float, default=1e9)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument(
        "--only", choices=["esd", "stats"], default=None, help="only the ESD or statistics figures"
    )
    ap.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
        return
    from deepscope.analysis.weights import spectrum

    out: dict[str, object] = {"params": args.params, "cpus": os.cpu_count()}
    out["load_avg_start"] = os.getloadavg()[0]
    if args.only == "stats":
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            path = Path(d) / "model.safetensors"
            _make_model(path, args.params)
            out["file_mb"] = round(path.stat().st_size / MB, 1)
            out.update(_stats_figures(path, args.reps))
        out["load_avg_end"] = os.getloadavg()[0]
        out["goals"] = GOALS
        print(json.dumps(out))
        return
    if args.only != "esd":
        _file_figures(out, args)
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in RESNET18]
    try:  # BLAS threads fight the other processes of a loaded machine: one thread
        from threadpoolctl import threadpool_limits

        limit: Any = threadpool_limits(1)
        out["esd_blas_threads"] = 1
    except ImportError:
        limit = contextlib.nullcontext()
        out["esd_blas_threads"] = "default"
    with limit:
        t = time.perf_counter()
        alphas = [spectrum(x).alpha for x in weights]
        out["esd_s"] = time.perf_counter() - t
        out["esd_layers"] = len(alphas)
        if importlib.util.find_spec("weightwatcher") is None:
            out["weightwatcher"] = "not importable here (not a dependency; see the docstring)"
        else:
            out["weightwatcher"] = _weightwatcher(weights, rng, args.reps)
    out["load_avg_end"] = os.getloadavg()[0]
    out["goals"] = GOALS
    print(json.dumps(out))


def _weightwatcher(
    weights: list[np.ndarray], rng: np.random.Generator, reps: int
) -> dict[str, Any]:
    """weightwatcher's analyze() vs ours on the same layers: time and alpha per layer."""
    import logging
    import warnings

    import torch
    import weightwatcher as ww

    from deepscope.analysis.weights import spectrum

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    heavy = [rng.standard_t(2.5, size=s).astype(np.float32) * 0.05 for s in
             [(1024, 512), (768, 768), (2048, 512), (512, 256), (1000, 512)]]  # fmt: skip

    def model(ws: list[np.ndarray]) -> torch.nn.Module:
        mods: list[torch.nn.Module] = []
        for w in ws:
            if w.ndim == 4:
                m: torch.nn.Module = torch.nn.Conv2d(
                    w.shape[1], w.shape[0], w.shape[2:], bias=False
                )
            else:
                m = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
            with torch.no_grad():
                m.weight.copy_(torch.from_numpy(w))
            mods.append(m)
        return torch.nn.Sequential(*mods)

    def analyze(ws: list[np.ndarray]) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ww.WeightWatcher(model=model(ws)).analyze(plot=False)

    out: dict[str, Any] = {"version": getattr(ww, "__version__", "?")}
    ours_t, theirs_t = [], []
    for _ in range(reps):  # interleaved
        t = time.perf_counter()
        [spectrum(w).alpha for w in weights]
        ours_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        analyze(weights)
        theirs_t.append(time.perf_counter() - t)
    out["ww_analyze_s"] = statistics.median(theirs_t)
    out["ours_esd_s"] = statistics.median(ours_t)
    out["ww_vs_ours_time_ratio"] = out["ww_analyze_s"] / out["ours_esd_s"]
    for label, ws in (("resnet18_random", weights), ("heavy_tailed", heavy)):
        df = analyze(ws)
        theirs = {int(r["layer_id"]): float(r["alpha"]) for _, r in df.iterrows()}
        ids = sorted(theirs)  # analyze() skips layers it deems too small (< its min_evals)
        ours = np.array([spectrum(ws[k]).alpha for k in range(len(ws))])
        # layer_id counts modules from the Sequential itself (id 0): layer k is id k + 1
        pairs = [(ours[i - 1], theirs[i]) for i in ids if 0 < i <= len(ws)]
        a = np.array(pairs, dtype=np.float64).reshape(-1, 2)
        ok = np.isfinite(a).all(axis=1)
        a = a[ok]
        diff = np.abs(a[:, 0] - a[:, 1]) if len(a) else np.zeros(0)
        out[label] = {
            "layers": len(ws),
            "compared": int(len(a)),
            "pearson_r": float(np.corrcoef(a[:, 0], a[:, 1])[0, 1]) if len(a) > 2 else None,
            "max_abs_diff": float(diff.max()) if len(diff) else None,
            "within_0.05": int((diff <= 0.05).sum()),
            "ours": [round(float(v), 3) for v in a[:, 0]],
            "ww": [round(float(v), 3) for v in a[:, 1]],
        }
    return out


def _file_figures(out: dict[str, object], args: argparse.Namespace) -> None:
    import deepscope

    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = Path(d) / "model.safetensors"
        _make_model(path, args.params)
        out["file_mb"] = round(path.stat().st_size / MB, 1)
        out.update(_stats_figures(path, args.reps))
        path.unlink()
        st, on = _make_sparse_10g(Path(d))
        out["open10g_file_gb"] = round(st.stat().st_size / 1e9, 2)
        for label, p in (("safetensors", st), ("onnx", on)):
            for kind in ("load_model", "open_tensors"):
                runs = [_run_child(kind, p) for _ in range(args.reps)]
                out[f"open10g_{label}_{kind}_s"] = statistics.median(r["s"] for r in runs)
                out[f"open10g_{label}_{kind}_rss_mb"] = max(r["rss_mb"] for r in runs)
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((50_000, 4096), dtype=np.float32).astype(np.float16)
    w = deepscope.weights({"emb.weight": emb})
    times = []
    for _ in range(args.reps):
        t = time.perf_counter()
        w.heatmap("emb.weight")
        times.append(time.perf_counter() - t)
    heat_s = statistics.median(times)
    out["heatmap_s"] = heat_s
    passes = []
    for _ in range(args.reps):  # a yardstick of this machine's speed now: one integer max pass
        t = time.perf_counter()
        emb.view(np.uint16).max()
        passes.append(time.perf_counter() - t)
    out["heatmap_one_pass_s"] = statistics.median(passes)
    out["heatmap_vs_one_pass"] = heat_s / statistics.median(passes)
    del emb, w


if __name__ == "__main__":
    main()
