"""Projector speed: PCA of 100k x 512 (goal <= 0.5 s); t-SNE of 20k x 64 through
`deepscope.project` vs openTSNE called directly with the same settings (overhead goal
<= 10%) and vs scikit-learn's TSNE (ratio goal >= 3x, on `--sklearn-n` points because
scikit-learn is slow on 20k). Runs are interleaved; medians of `--repeats`. Prints one
final JSON line.

    python benchmarks/projector_bench.py                  # the issue's sizes
    python benchmarks/projector_bench.py --quick          # small sizes (a loaded machine)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(10, d))
    return (centres[rng.integers(0, 10, n)] + rng.normal(size=(n, d))).astype(np.float32)


def _time(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_time(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pca-n", type=int, default=100_000)
    ap.add_argument("--pca-d", type=int, default=512)
    ap.add_argument("--tsne-n", type=int, default=20_000)
    ap.add_argument("--tsne-d", type=int, default=64)
    ap.add_argument("--tsne-iter", type=int, default=500)
    ap.add_argument("--sklearn-n", type=int, default=5_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes for a busy machine")
    args = ap.parse_args()
    if args.quick:
        args.pca_n, args.tsne_n, args.tsne_iter, args.sklearn_n = 50_000, 10_000, 250, 2_000
    from openTSNE import TSNE as OpenTSNE
    from sklearn.decomposition import PCA as SkPCA
    from sklearn.manifold import TSNE as SkTSNE

    import deepscope

    out: dict[str, Any] = {"machine_load": os.getloadavg()[0], "cpus": os.cpu_count()}
    x = _blobs(args.pca_n, args.pca_d)
    deepscope.project(x[:1000], "pca")  # warm up torch
    pca = _interleaved(
        {
            "deepscope": lambda: deepscope.project(x, "pca"),
            "sklearn_randomized": lambda: SkPCA(
                2, svd_solver="randomized", random_state=0
            ).fit_transform(x),
        },
        args.repeats,
    )
    out["pca"] = {"n": args.pca_n, "d": args.pca_d, "deepscope_s": pca["deepscope"],
                  "sklearn_randomized_s": pca["sklearn_randomized"], "goal_s": 0.5}  # fmt: skip

    t = _blobs(args.tsne_n, args.tsne_d, seed=1)
    threads = len(os.sched_getaffinity(0))
    early, iters = args.tsne_iter // 2, args.tsne_iter

    def ours() -> Any:
        return deepscope.project(t, "tsne", n_iter=iters, early_exaggeration_iter=early,
                                 n_jobs=threads, cache=False)  # fmt: skip

    def direct() -> Any:
        return OpenTSNE(n_iter=iters, early_exaggeration_iter=early, n_jobs=threads, random_state=0,
                        negative_gradient_method=ours_gradient).fit(t.astype(np.float64))  # fmt: skip

    ours_gradient = "fft" if args.tsne_n >= 10_000 else "bh"
    tsne = _interleaved({"deepscope": ours, "opentsne": direct}, max(1, args.repeats - 1))
    s = _blobs(args.sklearn_n, args.tsne_d, seed=2)
    small = _interleaved(
        {
            "deepscope": lambda: deepscope.project(
                s, "tsne", n_iter=iters, early_exaggeration_iter=early, cache=False
            ),  # fmt: skip
            "sklearn": lambda: SkTSNE(
                2, max_iter=iters + early, init="pca", random_state=0, n_jobs=threads
            ).fit_transform(s),  # fmt: skip
        },
        1,
    )
    out["tsne"] = {
        "n": args.tsne_n, "d": args.tsne_d, "iterations": iters + early, "gradient": ours_gradient,
        "deepscope_s": tsne["deepscope"], "opentsne_s": tsne["opentsne"],
        "overhead": tsne["deepscope"] / tsne["opentsne"] - 1, "overhead_goal": 0.10,
        "sklearn_n": args.sklearn_n, "deepscope_small_s": small["deepscope"],
        "sklearn_small_s": small["sklearn"], "sklearn_ratio": small["sklearn"] / small["deepscope"],
        "sklearn_ratio_goal": 3.0,
    }  # fmt: skip
    out["quick"] = bool(args.quick)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
