"""Projector speed: PCA of 100k x 512 (goal <= 0.5 s); t-SNE of 20k x 64 through
`deepscope.project` vs openTSNE called directly with the same settings (overhead goal
<= 10%; negative since deepscope hands openTSNE an exact neighbour graph and threaded FFTs,
`opentsne_ratio` is the speed-up) and vs scikit-learn's TSNE (ratio goal >= 3x, on `--sklearn-n` points because
scikit-learn is slow on 20k). Runs are interleaved; medians of `--repeats`. Prints one
final JSON line.

``--server N`` (e.g. 2000000) instead measures that a projection of N x 16 logged points
neither freezes the dashboard server nor its other panels: the real server (uvicorn on
loopback) with its spawn worker; GET /api/runs and GET /api/scalars latencies (p50/p95)
while idle, then while a t-SNE of the N points runs in the worker (`--busy-s` seconds
after the worker reports "running"), then the time from POST /api/projector/cancel to the
job's "cancelled" state.

    python benchmarks/projector_bench.py                  # the issue's sizes
    python benchmarks/projector_bench.py --quick          # small sizes (a loaded machine)
    python benchmarks/projector_bench.py --server 2000000 # server responsiveness
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


def _latencies(url: str, seconds: float, min_n: int = 20) -> dict[str, Any]:
    import httpx

    paths = ["/api/runs", "/api/scalars?run=busy&tag=loss"]
    got: list[float] = []
    end = time.monotonic() + seconds
    with httpx.Client(timeout=60) as c:
        while time.monotonic() < end or len(got) < min_n:
            for path in paths:
                t = time.perf_counter()
                r = c.get(url + path)
                got.append(time.perf_counter() - t)
                assert r.status_code == 200, (path, r.status_code)
            time.sleep(0.05)
    ms = np.array(got) * 1000
    return {"n": len(got), "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p95_ms": round(float(np.percentile(ms, 95)), 2),
            "max_ms": round(float(ms.max()), 2)}  # fmt: skip


def server_figures(n: int, busy_s: float) -> dict[str, Any]:
    """A t-SNE of n x 16 points in the server's worker: other endpoints' latency, cancel."""
    import tempfile
    from pathlib import Path

    import httpx

    import deepscope
    from deepscope.server.app import Settings
    from deepscope.server.routes.projector import manager
    from deepscope.server.runner import start_in_thread

    out: dict[str, Any] = {"points": n, "dims": 16, "method": "tsne"}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        with deepscope.init(logdir=root, name="busy") as run:
            run.log_embedding("big", _blobs(n, 16), step=0)
            for step in range(500):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
        out["log_s"] = round(time.perf_counter() - t, 2)
        server = start_in_thread(Settings(logdir=root, poll_interval=0.25))
        url, work = server.url, manager(server.app)
        try:
            _latencies(url, 1.0, 5)  # warm the routes
            out["idle"] = _latencies(url, busy_s / 2)
            body = {"run": "busy", "tag": "big", "step": 0, "method": "tsne", "dims": 2,
                    "params": {}}  # fmt: skip
            t = time.perf_counter()
            job = httpx.post(url + "/api/projector/project", json=body, timeout=60).json()
            out["post_project_ms"] = round((time.perf_counter() - t) * 1000, 1)
            key = job["key"]
            while work.job(key).state not in ("running", "done", "error"):  # type: ignore[union-attr]
                time.sleep(0.05)
            out["busy"] = _latencies(url, busy_s)
            state = work.job(key)
            out["busy_progress"] = round(state.progress, 4) if state else None
            out["state_before_cancel"] = state.state if state else None
            t = time.perf_counter()
            httpx.post(url + "/api/projector/cancel", json={"run": "busy", "key": key}, timeout=60)
            while work.job(key).state == "running" and time.perf_counter() - t < 300:  # type: ignore[union-attr]
                time.sleep(0.05)
            out["cancel_s"] = round(time.perf_counter() - t, 3)
            out["state_after_cancel"] = work.job(key).state  # type: ignore[union-attr]
            out["after_cancel"] = _latencies(url, 2.0)
        finally:
            work.close()
            server.stop()
    out["busy_vs_idle_p95"] = round(out["busy"]["p95_ms"] / out["idle"]["p95_ms"], 2)
    return out


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
    ap.add_argument("--server", type=int, default=0, help="server responsiveness on N points")
    ap.add_argument("--busy-s", type=float, default=20.0)
    args = ap.parse_args()
    if args.server:
        res = server_figures(args.server, args.busy_s)
        res["machine_load"] = os.getloadavg()[0]
        print(json.dumps(res))
        return
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
    # both with every core: scikit-learn's n_jobs=-1 (its Barnes-Hut gradient uses OpenMP on
    # all cores anyway; n_jobs sets its neighbour search), deepscope with its automatic
    # method/threads choice (every core from tsne.FFT_FROM points on: the same call as
    # n_jobs=threads there, so the two differ by noise only) and with n_jobs=every core;
    # same perplexity (30), iterations
    small = _interleaved(
        {
            "deepscope": lambda: deepscope.project(
                s, "tsne", n_iter=iters, early_exaggeration_iter=early, cache=False
            ),  # fmt: skip
            "deepscope_all_cores": lambda: deepscope.project(
                s, "tsne", n_iter=iters, early_exaggeration_iter=early, n_jobs=threads, cache=False
            ),  # fmt: skip
            "sklearn": lambda: SkTSNE(
                2, perplexity=30.0, max_iter=iters + early, init="pca", random_state=0, n_jobs=-1
            ).fit_transform(s),  # fmt: skip
        },
        1,
    )
    from deepscope.analysis.projection import tsne as tsne_mod

    out["tsne"] = {
        "threads": threads, "auto_threads_small": tsne_mod._threads(args.sklearn_n),
        "exact_knn": args.tsne_n <= tsne_mod.EXACT_KNN_MAX,
        "n": args.tsne_n, "d": args.tsne_d, "iterations": iters + early, "gradient": ours_gradient,
        "deepscope_s": tsne["deepscope"], "opentsne_s": tsne["opentsne"],
        "overhead": tsne["deepscope"] / tsne["opentsne"] - 1, "overhead_goal": 0.10,
        "opentsne_ratio": tsne["opentsne"] / tsne["deepscope"],
        "sklearn_n": args.sklearn_n, "deepscope_small_s": small["deepscope"],
        "sklearn_small_s": small["sklearn"], "sklearn_ratio": small["sklearn"] / small["deepscope"],
        "deepscope_small_all_cores_s": small["deepscope_all_cores"],
        "sklearn_ratio_all_cores": small["sklearn"] / small["deepscope_all_cores"],
        "sklearn_ratio_goal": 3.0,
    }  # fmt: skip
    out["quick"] = bool(args.quick)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
