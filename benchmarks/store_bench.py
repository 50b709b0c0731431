"""Store benchmark: deepscope's run store against TensorBoard's SummaryWriter, same process.

Run: ``.venv/bin/python benchmarks/store_bench.py [--quick]``. Prints a table, then as the
last line one JSON object with every figure and ratio. Each figure is the median of
several repetitions. Goals (DESIGN.md / issue #2):

- one ``run.log({"loss": x})`` in the training thread: <= 5 us, >= 25x faster than add_scalar
- scalars committed per second (log N, then flush): >= 100k/s, >= 10x TensorBoard
- histograms of all 62 ResNet-18 parameters, training-thread seconds: <= 1/10 of add_histogram
- 1M points of one tag -> 2,000-point series: <= 0.3 s (TensorBoard: EventAccumulator with a
  2,000-point reservoir reading an event file of the same points)

``--store postgresql://…`` (or ``--store postgres-temp``: a temporary cluster started here
with Debian's binaries, as the tests do) measures the PostgreSQL store instead, with the
SQLite store as the peer in the same run (issue #21):

- 8 writer processes, each its own run, 10 tags per ``run.log``: scalars committed per
  second in total (from a common start, once every interpreter has started and imported
  deepscope's tracking and store modules, until every process has opened its run, logged,
  flushed and exited): >= 100k/s;
- a 1M-point tag served as 2,000 points <= 0.3 s, a zoom (a tenth of the steps) <= 100 ms;
- listing 10,000 runs (``store.runs`` and one ``/api/runs`` page of 1,000 with the total)
  <= 0.5 s (no SQLite peer: 10,000 run.db files; Aim slows down from about 1,000 runs).

TensorBoard's pure-Python writer and reader are slow, so its side of the last two
figures runs on fewer points (``tb_points``) and is also given scaled linearly to the
deepscope point count (both are linear in the number of events); the JSON says which.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import shutil
import statistics
import struct
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

import deepscope
import deepscope.store


def median_time(fn: Callable[[], Any], reps: int) -> float:
    """Median wall seconds of `fn()` over `reps` runs."""
    times = []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---- a plain-torch ResNet-18 (torchvision does not import beside this torch) -----------------
class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


def resnet18(num_classes: int = 1000) -> nn.Module:
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


# ---- TensorBoard event files written directly (the SummaryWriter is too slow for 1M) ---------
def write_tb_scalars(path: Path, tag: str, n: int) -> None:
    """An event file with `n` scalar events of `tag`, byte-compatible with TensorBoard's."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    path.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(path / f"events.out.tfevents.{int(t0)}.bench", "wb") as f:
        for i in range(n):
            value = summary_pb2.Summary.Value(tag=tag, simple_value=math.sin(i * 1e-3))
            event = event_pb2.Event(
                wall_time=t0 + i * 1e-3, step=i, summary=summary_pb2.Summary(value=[value])
            )
            data = event.SerializeToString()
            header = struct.pack("<Q", len(data))
            f.write(header + struct.pack("<I", masked_crc32c(header)))
            f.write(data + struct.pack("<I", masked_crc32c(data)))


def tb_load(path: Path, tag: str) -> int:
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        EventAccumulator,
    )

    acc = EventAccumulator(str(path), size_guidance={SCALARS: 2000})
    acc.Reload()
    return len(acc.Scalars(tag))


def peak_bytes(fn: Callable[[], Any]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# ---- the four benchmarks --------------------------------------------------------------------
def bench_log_call(tmp: Path, calls: int, tb_calls: int, reps: int) -> dict[str, float]:
    from torch.utils.tensorboard import SummaryWriter

    run = deepscope.init(logdir=tmp / "ds", name="log-call")
    log = run.log

    def ds_loop() -> None:
        for i in range(calls):
            log({"loss": i * 1e-3})

    ds_times = []
    for _ in range(reps):
        ds_times.append(median_time(ds_loop, 1) / calls)
        run.flush()  # between repetitions, never timed
    run.finish()
    writer = SummaryWriter(str(tmp / "tb-log-call"))

    def tb_loop() -> None:
        for i in range(tb_calls):
            writer.add_scalar("loss", i * 1e-3, i)

    tb_times = []
    for _ in range(reps):
        tb_times.append(median_time(tb_loop, 1) / tb_calls)
        writer.flush()
    writer.close()
    ds, tb = statistics.median(ds_times), statistics.median(tb_times)
    return {"log_call_us": ds * 1e6, "tb_add_scalar_us": tb * 1e6, "log_call_speedup": tb / ds}


def bench_throughput(tmp: Path, n: int, tb_n: int, reps: int) -> dict[str, float]:
    from torch.utils.tensorboard import SummaryWriter

    run = deepscope.init(logdir=tmp / "ds", name="throughput")
    log = run.log
    offset = [0]

    def ds_commit() -> None:
        start = offset[0]
        for i in range(start, start + n):
            log({"loss": i * 1e-3}, step=i)
        run.flush()
        offset[0] += n

    ds = median_time(ds_commit, reps)
    run.finish()
    writer = SummaryWriter(str(tmp / "tb-throughput"))
    tb_offset = [0]

    def tb_commit() -> None:
        start = tb_offset[0]
        for i in range(start, start + tb_n):
            writer.add_scalar("loss", i * 1e-3, i)
        writer.flush()
        tb_offset[0] += tb_n

    tb = median_time(tb_commit, reps)
    writer.close()
    ds_rate, tb_rate = n / ds, tb_n / tb
    return {
        "commit_per_s": ds_rate,
        "tb_commit_per_s": tb_rate,
        "commit_speedup": ds_rate / tb_rate,
    }


def bench_histograms(tmp: Path, reps: int) -> dict[str, float]:
    from torch.utils.tensorboard import SummaryWriter

    torch.manual_seed(0)
    params = list(resnet18().named_parameters())
    assert len(params) == 62, len(params)
    n_values = sum(p.numel() for _, p in params)
    run = deepscope.init(logdir=tmp / "ds", name="histograms")
    step = [0]
    flush_times = []

    def ds_step() -> None:
        for name, p in params:
            run.log_histogram(name, p, step=step[0])
        step[0] += 1

    ds_times = []
    for _ in range(reps):
        ds_times.append(median_time(ds_step, 1))
        t0 = time.perf_counter()
        run.flush()
        flush_times.append(time.perf_counter() - t0)
    run.finish()
    writer = SummaryWriter(str(tmp / "tb-histograms"))
    tb_step = [0]

    def tb_step_fn() -> None:
        for name, p in params:
            writer.add_histogram(name, p, tb_step[0])
        tb_step[0] += 1

    tb = median_time(tb_step_fn, reps)
    writer.close()
    ds = statistics.median(ds_times)
    return {
        "hist_values": float(n_values),
        "hist_train_thread_s": ds,
        "hist_background_flush_s": statistics.median(flush_times),
        "tb_add_histogram_s": tb,
        "hist_train_thread_ratio": ds / tb,
    }


def bench_downsample(tmp: Path, n: int, tb_n: int, reps: int) -> dict[str, float]:
    run = deepscope.init(logdir=tmp / "ds", name="downsample")
    log = run.log
    for i in range(n):
        log({"series": math.sin(i * 1e-3)}, step=i)
    run.finish()
    reader = deepscope.store.open(tmp / "ds").run("downsample")
    got = len(reader.scalars("series", max_points=2000))
    ds = median_time(lambda: reader.scalars("series", max_points=2000), reps)
    ds_mem = peak_bytes(lambda: reader.scalars("series", max_points=2000))
    tb_dir = tmp / "tb-downsample"
    write_tb_scalars(tb_dir, "series", tb_n)
    tb_got = tb_load(tb_dir, "series")
    tb = median_time(lambda: tb_load(tb_dir, "series"), reps)
    tb_mem = peak_bytes(lambda: tb_load(tb_dir, "series"))
    tb_scaled = tb * n / tb_n
    return {
        "downsample_points": float(n),
        "downsample_returned": float(got),
        "downsample_s": ds,
        "downsample_peak_mb": ds_mem / 2**20,
        "tb_points": float(tb_n),
        "tb_returned": float(tb_got),
        "tb_load_s": tb,
        "tb_load_s_scaled_to_points": tb_scaled,
        "tb_load_peak_mb": tb_mem / 2**20,
        "downsample_speedup": tb_scaled / ds,
    }


_WRITER = """
import os, sys, time
import deepscope
import deepscope.tracking.run  # what deepscope.init imports lazily, imported before the start
target, name, calls, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if target.startswith("postgres"):  # the backend and its driver, imported lazily too
    import psycopg, deepscope.store.postgres.writer, deepscope.store.postgres.scalar_copy
tags = [f"metric/{i}" for i in range(10)]
open(f"{go}.{name}.ready", "w").close()
while not os.path.exists(go):
    time.sleep(0.001)
run = deepscope.init(store=target, name=name, flush_interval=1.0)
log = run.log
for step in range(calls):
    log({t: step * 0.5 + i for i, t in enumerate(tags)}, step=step)
run.finish()
assert run.dropped == 0, run.dropped
"""


def bench_writers(target: str, procs: int, calls: int, tag: str) -> float:
    """Scalars committed per second by `procs` writer processes into `target` (total)."""
    import subprocess

    go = Path(tempfile.mkdtemp(prefix="deepscope-go-")) / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, target, f"{tag}-w{i}", str(calls), str(go)]
        )
        for i in range(procs)
    ]
    # every interpreter started and imported deepscope (under load this takes long)
    ready = [Path(f"{go}.{tag}-w{i}.ready") for i in range(procs)]
    deadline = time.monotonic() + 300.0
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        if any(w.poll() is not None for w in workers):
            break
        time.sleep(0.01)
    t0 = time.perf_counter()
    go.touch()
    codes = [w.wait() for w in workers]
    elapsed = time.perf_counter() - t0
    shutil.rmtree(go.parent, ignore_errors=True)
    if any(codes):
        raise SystemExit(f"a writer process failed: exit codes {codes}")
    return procs * calls * 10 / elapsed


def _fill_tag(target: str, n: int) -> None:
    run = deepscope.init(store=target, name="big", flush_interval=1.0)
    log = run.log
    for i in range(n):
        log({"series": math.sin(i * 1e-3) + (i % 97) * 1e-3}, step=i)
    run.finish()


def _fill_runs(url: str, n: int) -> None:
    """`n` finished runs, written straight into the tables (10,000 writers would take long)."""
    import psycopg

    now = time.time()
    with psycopg.connect(url) as conn:
        with conn.cursor().copy(
            "COPY deepscope.run (name, created, config, version) FROM STDIN"
        ) as cp:
            for i in range(n):
                cp.write_row(
                    (f"listed-{i:05d}", now - n + i, json.dumps({"lr": 0.001, "seed": i}), 1)
                )
        conn.execute(
            "INSERT INTO deepscope.session (run_id, pid, host, started, heartbeat, ended, state)"
            " SELECT id, 1, 'bench', created, created + 60, created + 60, 'finished'"
            " FROM deepscope.run WHERE name LIKE 'listed-%'"
        )


def bench_postgres(url: str, q: bool, tmp: Path) -> dict[str, Any]:
    """Figures of the PostgreSQL store, the SQLite store alongside (interleaved, medians)."""
    from starlette.testclient import TestClient

    from deepscope.server.app import Settings, create_app

    procs, calls = 8, (2_000 if q else 10_000)
    pg_rates, lite_rates = [], []
    for rep in range(3):  # interleaved: the machine's load hits both alike
        pg_rates.append(bench_writers(url, procs, calls, f"r{rep}"))
        lite_rates.append(bench_writers(str(tmp / f"lite{rep}"), procs, calls, f"r{rep}"))
    n = 200_000 if q else 1_000_000
    _fill_tag(url, n)
    _fill_tag(str(tmp / "lite-big"), n)
    out: dict[str, Any] = {
        "pg_writers": procs,
        "pg_scalars_per_writer": calls * 10,
        "pg_commit_per_s": statistics.median(pg_rates),
        "sqlite_commit_per_s": statistics.median(lite_rates),
        "pg_tag_points": n,
    }
    for label, target in (("pg", url), ("sqlite", str(tmp / "lite-big"))):
        reader = deepscope.store.open(target).run("big")
        got = reader.scalars("series", max_points=2000)
        assert len(got) <= 2000 and got[-1].step == n - 1
        out[f"{label}_serve_s"] = median_time(partial(reader.scalars, "series"), 5)
        zoom = partial(reader.scalars, "series", start_step=n // 2, end_step=n // 2 + n // 10)
        out[f"{label}_zoom_s"] = median_time(zoom, 5)
    _fill_runs(url, 10_000)
    store = deepscope.store.open(url)
    out["pg_runs_listed"] = len(store.runs(limit=20_000))
    out["pg_list_10k_s"] = median_time(lambda: store.runs(limit=20_000), 5)
    app = create_app(Settings(logdir=tmp, store_url=url))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get("/api/runs", params={"limit": 1000}).json()
        assert page["total"] >= 10_000, page["total"]
        out["pg_api_runs_page_s"] = median_time(
            lambda: client.get("/api/runs", params={"limit": 1000, "offset": 5000}), 5
        )
    out["pg_commit_ratio_to_sqlite"] = out["pg_commit_per_s"] / out["sqlite_commit_per_s"]
    return out


def _temp_cluster() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from _pg import PgCluster  # the tests' temporary cluster (initdb as an unprivileged user)

    return PgCluster(fsync=True).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points and repetitions")
    parser.add_argument("--store", default=None,
                        help="postgresql://… or postgres-temp: benchmark the PostgreSQL store")  # fmt: skip
    args = parser.parse_args(argv)
    if args.store is not None:
        main_postgres(args.store, args.quick)
        return
    torch.set_num_threads(1)
    q = args.quick
    reps = 3 if q else 5
    tmp = Path(tempfile.mkdtemp(prefix="deepscope-bench-"))
    results: dict[str, Any] = {"quick": q, "torch_threads": 1}
    try:
        results.update(bench_log_call(tmp, 20_000 if q else 100_000, 2_000 if q else 5_000, reps))
        results.update(bench_throughput(tmp, 50_000 if q else 100_000, 2_000 if q else 5_000, 3))
        results.update(bench_histograms(tmp, 2 if q else 3))
        results.update(
            bench_downsample(tmp, 200_000 if q else 1_000_000, 10_000 if q else 20_000, 3)
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(results)
    print(json.dumps(results, sort_keys=True))


def main_postgres(store: str, quick: bool) -> None:
    from deepscope.store.postgres.url import mask

    cluster = _temp_cluster() if store == "postgres-temp" else None
    url = cluster.url if cluster is not None else store
    tmp = Path(tempfile.mkdtemp(prefix="deepscope-bench-"))
    try:
        r = bench_postgres(url, quick, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if cluster is not None:
            cluster.destroy()
    r.update({"quick": quick, "store": mask(url) if cluster is None else "postgres-temp"})
    rows = [
        (f"{r['pg_writers']} writers: scalars committed / s", r["pg_commit_per_s"],
         r["sqlite_commit_per_s"], ">= 100k/s"),
        (f"{r['pg_tag_points'] / 1e6:g}M-point tag -> 2000 (s)", r["pg_serve_s"],
         r["sqlite_serve_s"], "<= 0.3 s"),
        ("zoom to a tenth (s)", r["pg_zoom_s"], r["sqlite_zoom_s"], "<= 0.1 s"),
        (f"list {r['pg_runs_listed']} runs (s)", r["pg_list_10k_s"], float("nan"), "<= 0.5 s"),
        ("/api/runs page of 1000 + total (s)", r["pg_api_runs_page_s"], float("nan"), "<= 0.5 s"),
    ]  # fmt: skip
    print(f"{'measure':58} {'postgresql':>12} {'sqlite':>12}  goal")
    for name, a, b, goal in rows:
        print(f"{name:58} {a:12.4g} {b:12.4g}  {goal}")
    sys.stdout.flush()
    print(json.dumps(r, sort_keys=True))


def print_table(r: dict[str, Any]) -> None:
    rows = [
        ("run.log call (us)", r["log_call_us"], r["tb_add_scalar_us"], "<= 5 us, >= 25x"),
        ("scalars committed / s", r["commit_per_s"], r["tb_commit_per_s"], ">= 100k/s, >= 10x"),
        (
            f"62 ResNet-18 histograms ({r['hist_values'] / 1e6:.1f}M values), training thread (s)",
            r["hist_train_thread_s"],
            r["tb_add_histogram_s"],
            "<= 1/10",
        ),
        ("   ... then background flush (s)", r["hist_background_flush_s"], float("nan"), ""),
        (
            f"{r['downsample_points'] / 1e6:g}M points -> 2000 (s)",
            r["downsample_s"],
            r["tb_load_s_scaled_to_points"],
            "<= 0.3 s",
        ),
        (
            "   ... peak memory (MB)",
            r["downsample_peak_mb"],
            r["tb_load_peak_mb"],
            f"TB at {r['tb_points'] / 1e3:g}k points",
        ),
    ]
    print(f"{'measure':58} {'deepscope':>12} {'tensorboard':>12}  goal")
    for name, ds, tb, goal in rows:
        print(f"{name:58} {ds:12.4g} {tb:12.4g}  {goal}")
    print(
        f"speedups: log call {r['log_call_speedup']:.1f}x, commit {r['commit_speedup']:.1f}x, "
        f"histogram thread ratio {r['hist_train_thread_ratio']:.3f}, "
        f"downsample {r['downsample_speedup']:.1f}x (TB time scaled from "
        f"{r['tb_points']:g} points)"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
