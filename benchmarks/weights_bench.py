"""Weights analysis speed and memory (issue 15), one run, one JSON line printed last.

Figures:
- ``stats_s`` / ``stats_peak_rss_mb``: `deepscope.weights(file).stats()` over every tensor
  of a synthetic fp16 safetensors model of ``--params`` parameters (default 1e9, ~2 GB on
  disk), measured in a child process (its own peak RSS); ``read_s``: one sequential read
  of the same file in 64 MB blocks (the goal: stats_s ≤ read_s, RSS ≤ 300 MB).
- ``heatmap_s``: the heatmap of a 50,000 × 4,096 fp16 matrix (goal ≤ 1 s).
- ``esd_s``: spectra (singular values + alpha) of every 2-D-or-conv weight of a
  ResNet-18-shaped set of random weights; ``weightwatcher_s`` where that package runs.

Run: ``python benchmarks/weights_bench.py [--params 1e9] [--dir /tmp/x]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RESNET18 = [(64, 3, 7, 7)] + [(64, 64, 3, 3)] * 4 + [(128, 64, 3, 3), (128, 128, 3, 3)] * 2
RESNET18 += [(256, 128, 3, 3), (256, 256, 3, 3)] * 2 + [(512, 256, 3, 3), (512, 512, 3, 3)] * 2
RESNET18 += [(128, 64, 1, 1), (256, 128, 1, 1), (512, 256, 1, 1), (1000, 512)]


def _make_file(path: Path, params: float) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    block = rng.standard_normal((4096, 4096), dtype=np.float32).astype(np.float16)
    n = max(1, round(params / block.size))
    tensors = {f"layers.{i}.weight": block for i in range(n)}
    save_file(tensors, str(path))


def _child_stats(path: str) -> None:
    import deepscope

    t = time.perf_counter()
    deepscope.weights(path).stats()
    elapsed = time.perf_counter() - t
    # VmHWM, not ru_maxrss: ru_maxrss keeps the parent's peak across fork+exec
    with open("/proc/self/status") as f:
        rss = int(f.read().split("VmHWM:")[1].split()[0]) / 1024
    print(json.dumps({"stats_s": elapsed, "stats_peak_rss_mb": rss}))


def _read(path: Path) -> float:
    t = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=float, default=1e9)
    ap.add_argument("--dir", type=Path, default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child_stats(args.child)
        return
    import deepscope
    from deepscope.analysis.weights import spectrum

    out: dict[str, object] = {"params": args.params}
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        path = Path(d) / "model.safetensors"
        _make_file(path, args.params)
        out["file_mb"] = path.stat().st_size / 2**20
        out["read_s"] = _read(path)
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(path)],
            capture_output=True,
            text=True,
            check=True,
        )
        out.update(json.loads(child.stdout.strip().splitlines()[-1]))
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((50_000, 4096), dtype=np.float32).astype(np.float16)
    w = deepscope.weights({"emb.weight": emb})
    t = time.perf_counter()
    w.heatmap("emb.weight")
    out["heatmap_s"] = time.perf_counter() - t
    del emb, w
    weights = [rng.standard_normal(s).astype(np.float32) * 0.05 for s in RESNET18]
    t = time.perf_counter()
    alphas = [spectrum(x).alpha for x in weights]
    out["esd_s"] = time.perf_counter() - t
    out["esd_layers"] = len(alphas)
    out["weightwatcher_s"] = (
        "not installed" if importlib.util.find_spec("weightwatcher") is None else "not run"
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
