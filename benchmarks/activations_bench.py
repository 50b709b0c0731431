"""Activations: capture cost against a plain forward and torchlens, and unit-stats streaming.

1. Capture every leaf module's output of a ResNet-18-sized CNN (built here in plain torch),
   batch 1×3×224×224. A child process calls a plain forward and `deepscope.activations`
   in turn (A, B, A, B, ...); another calls a plain forward and torchlens in turn
   (`log_forward_pass`, or `trace` in torchlens 2.x, which saves every layer by default;
   the JSON says which), kept apart because torchlens wraps torch functions. The two kinds
   of child alternate for ROUNDS rounds; figures are medians of every timed call, as wall
   time and as the process's CPU time (less sensitive to other jobs on a loaded machine).
   Extra memory: the RSS a call's result holds (and deepscope's exact tensor bytes).
2. Unit stats over 10k MNIST-sized inputs (generated batch by batch, never held): plain
   forward passes and `unit_stats` over the same batches in turn, medians; then the peak
   RSS (VmHWM) of a fresh process per dataset size, 1k and 10k inputs, for unit_stats and
   for the plain passes, and unit_stats' streaming state in bytes (its top-k buffers and
   accumulators), which must not grow with the dataset.

Threads are pinned (BENCH_THREADS, default 1). Prints one JSON line at the end.
Run: ``.venv/bin/python benchmarks/activations_bench.py`` (about 5 minutes on 2 loaded cores).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

REPS = int(os.environ.get("BENCH_REPS", "5"))  # interleaved timed calls per child process
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))  # child processes per comparison
# one thread: the machine this was written on has 2 cores shared with other jobs, and a
# single-threaded forward is the fair, least noisy comparison there
THREADS = int(os.environ.get("BENCH_THREADS", "1"))
STATS_N = int(os.environ.get("BENCH_STATS_N", "10000"))


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        skip = x if self.down is None else self.down(x)
        return torch.relu(out + skip)


def resnet18() -> nn.Module:
    """ResNet-18's layout (11.7 M parameters), built without torchvision."""
    layers: list[nn.Module] = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 1000)]
    return nn.Sequential(*layers).eval()


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 10),
    ).eval()


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """VmHWM of this process, not ru_maxrss: ru_maxrss keeps the parent's peak across
    fork+exec, so a child would report the benchmark driver's peak."""
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) * 1024


def torchlens_fn() -> tuple[Any, str]:
    import torchlens

    if hasattr(torchlens, "log_forward_pass"):
        return torchlens.log_forward_pass, "torchlens.log_forward_pass"
    version = getattr(torchlens, "__version__", "?")
    return torchlens.trace, f"torchlens.trace (torchlens {version}; no log_forward_pass)"


def timed(call: Any) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of one call."""
    w, c = time.perf_counter(), time.process_time()
    out = call()
    return time.perf_counter() - w, time.process_time() - c, out


def child_capture(tools: list[str]) -> dict[str, Any]:
    """The given tools called in turn (A, B, A, B, ...) REPS times after a warm-up each."""
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)
    net = resnet18()
    x = torch.randn(1, 3, 224, 224)
    import deepscope

    calls: dict[str, Any] = {}
    names: dict[str, str] = {}
    for tool in tools:
        if tool == "plain":
            calls[tool] = lambda: net(x)
        elif tool == "deepscope":
            calls[tool] = lambda: deepscope.activations(net, x)
        else:
            fn, names[tool] = torchlens_fn()
            calls[tool] = lambda fn=fn: fn(net, x)
    out: dict[str, Any] = {t: {"wall": [], "cpu": [], "extra_rss": []} for t in tools}
    with torch.no_grad():
        for tool in tools:  # warm-up
            del_me = calls[tool]()
            del del_me
        for _ in range(REPS):
            for tool in tools:
                before = rss()
                wall, cpu, held = timed(calls[tool])
                out[tool]["wall"].append(wall)
                out[tool]["cpu"].append(cpu)
                out[tool]["extra_rss"].append(rss() - before)  # what the result holds
                if tool == "deepscope":
                    out[tool]["layers"] = len(held.layers)
                    out[tool]["bytes"] = sum(
                        t.numel() * t.element_size() for t in held.tensors.values()
                    )
                del held
    for tool, name in names.items():
        out[tool]["api"] = name
    return out


def batches(n: int, size: int = 100) -> Iterator[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    for start in range(0, n, size):
        yield torch.rand(min(size, n - start), 1, 28, 28, generator=g)


STATS_LAYERS = ["1", "4", "7"]  # both ReLUs (16×28×28, 32×14×14 units) and the logits


def child_stats_time(n: int) -> dict[str, Any]:
    """Plain passes and unit_stats over the same n inputs, interleaved, REPS pairs."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    net = small_cnn()
    from deepscope.analysis.activations import unit_stats

    def plain() -> None:
        with torch.no_grad():
            for x in batches(n):
                net(x)

    def stats() -> Any:
        return unit_stats(net, batches(n), STATS_LAYERS, top_k=9, progress=False)

    plain(), stats()  # warm-up
    out: dict[str, list[float]] = {"plain_wall": [], "plain_cpu": [], "wall": [], "cpu": []}
    for _ in range(REPS):
        wall, cpu, _ = timed(plain)
        out["plain_wall"].append(wall)
        out["plain_cpu"].append(cpu)
        wall, cpu, _ = timed(stats)
        out["wall"].append(wall)
        out["cpu"].append(cpu)
    return out


def child_stats_memory(tool: str, n: int) -> dict[str, Any]:
    """Peak RSS (VmHWM) of a fresh process streaming n inputs, and the streaming state."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    net = small_cnn()
    from deepscope.analysis.activations import unit_stats

    state = 0
    if tool == "plain":
        with torch.no_grad():
            for x in batches(n):
                net(x)
    else:
        res = unit_stats(net, batches(n), STATS_LAYERS, top_k=9, progress=False)
        state = res.meta["state_bytes"]
    return {"peak_rss": peak_rss(), "state_bytes": state}


def run_child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def med(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    try:
        api = torchlens_fn()[1]
    except ImportError:
        api = None
    # 1. capture: plain and deepscope interleaved in one process; torchlens in its own
    # process (it wraps torch functions), the two kinds of process interleaved by round
    cap: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, str] = {}
    for _ in range(ROUNDS):
        kinds = [["plain", "deepscope"]] + ([["plain", "torchlens"]] if api else [])
        for tools in kinds:
            res = run_child("capture", ",".join(tools))
            if "error" in res:
                errors[tools[-1]] = res["error"]
                continue
            for tool in tools:
                key = tool if tool != "plain" else f"plain_with_{tools[-1]}"
                got = cap.setdefault(key, {"wall": [], "cpu": [], "extra_rss": []})
                for field in ("wall", "cpu", "extra_rss"):
                    got[field] += res[tool][field]
                for extra in ("layers", "bytes", "api"):
                    if extra in res[tool]:
                        got[extra] = res[tool][extra]  # type: ignore[assignment]
    ds, plain = cap["deepscope"], cap["plain_with_deepscope"]
    report: dict[str, Any] = {
        "threads": THREADS,
        "loaded_machine_load_avg": os.getloadavg()[0],
        "capture_plain_s": med(plain["wall"]),
        "capture_deepscope_s": med(ds["wall"]),
        "capture_ratio_to_plain": med(ds["wall"]) / med(plain["wall"]),
        "capture_ratio_to_plain_cpu": med(ds["cpu"]) / med(plain["cpu"]),
        "capture_goal_ratio": 1.3,
        "captured_layers": ds.get("layers"),
        "captured_bytes": ds.get("bytes"),
        "deepscope_extra_rss": med(ds["extra_rss"]),
    }
    if "torchlens" in cap:
        tl = cap["torchlens"]
        report.update(
            torchlens_api=tl.get("api"),
            capture_torchlens_s=med(tl["wall"]),
            speedup_vs_torchlens=med(tl["wall"]) / med(ds["wall"]),
            speedup_vs_torchlens_cpu=med(tl["cpu"]) / med(ds["cpu"]),
            # each tool against the plain forward interleaved in its own processes: the
            # other jobs on a loaded machine change between processes, this cancels it
            speedup_vs_torchlens_per_plain=(
                (med(tl["wall"]) / med(cap["plain_with_torchlens"]["wall"]))
                / (med(ds["wall"]) / med(plain["wall"]))
            ),
            torchlens_ratio_to_plain=med(tl["wall"]) / med(cap["plain_with_torchlens"]["wall"]),
            speedup_goal=8.0,
            torchlens_extra_rss=med(tl["extra_rss"]),
            plain_in_torchlens_process_s=med(cap["plain_with_torchlens"]["wall"]),
        )
    else:
        report["torchlens"] = errors.get("torchlens", "not installed")
    # 2. unit stats: time (interleaved pairs in one process per round), then memory
    st: dict[str, list[float]] = {"plain_wall": [], "plain_cpu": [], "wall": [], "cpu": []}
    for _ in range(ROUNDS):
        res = run_child("stats_time", str(STATS_N))
        for field in st:
            st[field] += res[field]
    mem = {
        f"{tool}_{n}": run_child("stats_memory", tool, str(n))
        for n in (1000, STATS_N)
        for tool in ("plain", "deepscope")
    }
    report.update(
        unit_stats_items=STATS_N,
        unit_stats_plain_s=med(st["plain_wall"]),
        unit_stats_s=med(st["wall"]),
        unit_stats_ratio=med(st["wall"]) / med(st["plain_wall"]),
        unit_stats_ratio_cpu=med(st["cpu"]) / med(st["plain_cpu"]),
        unit_stats_goal_ratio=1.5,
        unit_stats_peak_rss_1k=mem["deepscope_1000"]["peak_rss"],
        unit_stats_peak_rss_10k=mem[f"deepscope_{STATS_N}"]["peak_rss"],
        plain_peak_rss_1k=mem["plain_1000"]["peak_rss"],
        plain_peak_rss_10k=mem[f"plain_{STATS_N}"]["peak_rss"],
        unit_stats_state_bytes_1k=mem["deepscope_1000"]["state_bytes"],
        unit_stats_state_bytes_10k=mem[f"deepscope_{STATS_N}"]["state_bytes"],
        runs=f"{ROUNDS} rounds x {REPS} interleaved reps, medians",
    )
    if errors:
        report["errors"] = errors
    print(json.dumps(report))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind = sys.argv[2]
        if kind == "capture":
            print(json.dumps(child_capture(sys.argv[3].split(","))))
        elif kind == "stats_time":
            print(json.dumps(child_stats_time(int(sys.argv[3]))))
        else:
            print(json.dumps(child_stats_memory(sys.argv[3], int(sys.argv[4]))))
    else:
        main()
